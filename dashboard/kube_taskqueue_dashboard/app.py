"""The dashboard's web app: server-rendered pages (Starlette + Jinja2), refreshed by a few
lines of inline script; actions are POSTs guarded against cross-site requests, and absent in
read-only mode."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any
from urllib.parse import quote

import botocore.exceptions
import kubernetes
from kube_taskqueue.ops import deadletters
from kube_taskqueue.ops.deadletters import DeadLetterError, QueuePair, Selection
from kube_taskqueue.ops.journal import RedriveJournal
from kube_taskqueue.sqs import describe_error
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from kube_taskqueue_dashboard.cluster import Cluster
from kube_taskqueue_dashboard.csrf import COOKIE, FIELD, CsrfGuard
from kube_taskqueue_dashboard.sparkline import DepthHistory, svg

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
#: Dead letters listed on a queue's page.
PEEK_LIMIT = 50


@dataclasses.dataclass
class Settings:
    read_only: bool = False
    refresh_seconds: int = 5
    journal_directory: Path | None = None


TEMPLATES.env.filters["age"] = deadletters.age_text
TEMPLATES.env.filters["urlpart"] = lambda value: quote(str(value), safe="")


class Dashboard:
    """The pages and actions, over one cluster view."""

    def __init__(self, cluster: Cluster, settings: Settings, guard: CsrfGuard) -> None:
        self.cluster = cluster
        self.settings = settings
        self.csrf = guard
        self.history = DepthHistory()

    def render(self, request: Request, template: str, **context: Any) -> Response:
        session = request.cookies.get(COOKIE) or CsrfGuard.new_session()
        response = TEMPLATES.TemplateResponse(
            request,
            template,
            {
                "settings": self.settings,
                "csrf_field": FIELD,
                "csrf_token": self.csrf.token(session),
                "namespace": self.cluster.namespace,
                **context,
            },
        )
        if COOKIE not in request.cookies:
            response.set_cookie(COOKIE, session, httponly=True, samesite="strict")
        return response

    async def overview(self, request: Request) -> Response:
        try:
            taskqueues = await asyncio.to_thread(self.cluster.taskqueues)
        except kubernetes.client.ApiException as error:
            return PlainTextResponse(
                f"cannot list TaskQueues: {error.status} {error.reason}", status_code=502
            )
        sparks = {}
        for taskqueue in taskqueues:
            for queue in taskqueue.queues:
                if queue.counts is not None:
                    self.history.add(queue.url, queue.counts.visible)
                sparks[queue.url] = svg(self.history.depths(queue.url))
        template = "_taskqueues.html" if request.query_params.get("partial") else "index.html"
        return self.render(request, template, taskqueues=taskqueues, sparks=sparks)

    async def dead_letters(self, request: Request) -> Response:
        namespace, name, queue = (request.path_params[k] for k in ("namespace", "name", "queue"))
        task = request.query_params.get("task") or None
        try:
            client, pair = await asyncio.to_thread(self.cluster.pair, namespace, name, queue)
            report = await asyncio.to_thread(deadletters.report, client, pair)
            messages = await asyncio.to_thread(
                deadletters.peek, client, pair, Selection(task=task, limit=PEEK_LIMIT)
            )
        except KeyError:
            return PlainTextResponse(f"TaskQueue {namespace}/{name} has no queue {queue!r}", 404)
        except kubernetes.client.ApiException as error:
            return PlainTextResponse(f"TaskQueue {namespace}/{name}: {error.reason}", 404)
        except DeadLetterError as error:
            return PlainTextResponse(str(error), 404)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as error:
            return PlainTextResponse(describe_error(error), 502)
        return self.render(
            request,
            "dead_letters.html",
            key=f"{namespace}/{name}",
            namespace_of=namespace,
            name=name,
            queue=queue,
            pair=pair,
            report=report,
            messages=messages,
            task=task,
            done=request.query_params.get("done"),
        )

    def refusal(self, request: Request, form: Any) -> Response | None:
        """Why a POST is not acted on (None: it may be)."""
        if self.settings.read_only:
            return PlainTextResponse("the dashboard runs read-only (--read-only)", 403)
        origin = request.headers.get("origin")
        if origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}":
            return PlainTextResponse("refused: the request comes from another origin", 403)
        if not self.csrf.valid(request.cookies.get(COOKIE), str(form.get(FIELD) or "") or None):
            return PlainTextResponse("refused: missing or wrong CSRF token", 403)
        return None

    async def action(self, request: Request) -> Response:
        form = await request.form()
        refused = self.refusal(request, form)
        if refused is not None:
            return refused
        namespace, name, queue = (request.path_params[k] for k in ("namespace", "name", "queue"))
        verb = request.path_params["verb"]
        task = str(form.get("task") or "") or None
        if verb not in ("redrive", "purge") or (
            verb == "purge" and not task and form.get("all") != "yes"
        ):
            return PlainTextResponse("unknown action (redrive, or purge with a task or all)", 400)
        try:
            client, pair = await asyncio.to_thread(self.cluster.pair, namespace, name, queue)
            done = await asyncio.to_thread(self._act, verb, client, pair, Selection(task=task))
        except KeyError:
            return PlainTextResponse(f"TaskQueue {namespace}/{name} has no queue {queue!r}", 404)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as error:
            return PlainTextResponse(describe_error(error), 502)
        page = f"/taskqueues/{namespace}/{name}/queues/{queue}/dead-letters"
        return RedirectResponse(f"{page}?done={quote(done)}", status_code=303)

    def _act(self, verb: str, client: Any, pair: QueuePair, selection: Selection) -> str:
        if verb == "purge":
            summary = deadletters.purge(client, pair, selection)
            done = f"deleted {summary.deleted}"
        else:
            journal = RedriveJournal.for_queue(
                pair.dead_letter_arn, self.settings.journal_directory
            )
            try:
                summary = deadletters.redrive(client, pair, selection, journal=journal)
            finally:
                journal.close()
            done = f"moved {summary.moved} to {pair.queue}"
        if summary.failed:
            done += f"; {summary.failed} failed and are still there"
        return done


async def _health(_: Request) -> Response:
    return HTMLResponse("ok")


def create_app(
    cluster: Cluster, settings: Settings, *, guard: CsrfGuard | None = None
) -> Starlette:
    dashboard = Dashboard(cluster, settings, guard or CsrfGuard())
    queue = "/taskqueues/{namespace}/{name}/queues/{queue}"
    return Starlette(
        routes=[
            Route("/", dashboard.overview),
            Route("/healthz", _health),
            Route(f"{queue}/dead-letters", dashboard.dead_letters),
            Route(f"{queue}/{{verb:str}}", dashboard.action, methods=["POST"]),
        ]
    )
