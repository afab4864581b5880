"""The seed's split rule, enforced when a processor starts."""

from __future__ import annotations

import pytest
import sampleapp
from kube_taskqueue.assignment import AssignmentError, assign, load_provider


def test_omitted_task_set_takes_every_task():
    result = assign(sampleapp.provider, processor="all", tasks=None)
    assert result.queues == ("other", "work")
    assert result.tasks == {"record:job", "record_async:job", "other:job"}


def test_a_whole_queue_may_go_to_one_processor():
    result = assign(sampleapp.provider, processor="others", tasks=["other:job"])
    assert result.queues == ("other",)


def test_splitting_a_queue_is_refused_naming_queue_tasks_and_processor():
    with pytest.raises(AssignmentError) as error:
        assign(sampleapp.provider, processor="half", tasks=["record:job"])
    message = str(error.value)
    assert "queue 'work' would be split" in message
    assert "processor 'half'" in message
    assert "record:job" in message and "record_async:job" in message


def test_unknown_tasks_are_refused_with_the_known_ones_listed():
    with pytest.raises(AssignmentError, match=r"does not define: nope:job \(known: other:job"):
        assign(sampleapp.provider, processor="p", tasks=["nope:job", "other:job"])


def test_an_empty_task_set_is_refused():
    with pytest.raises(AssignmentError, match="has no tasks"):
        assign(sampleapp.provider, processor="p", tasks=[])


def test_load_provider_errors_name_the_app():
    with pytest.raises(AssignmentError, match="cannot import module 'no_such_module'"):
        load_provider("no_such_module:provider")
    with pytest.raises(AssignmentError, match="has no 'missing'"):
        load_provider("sampleapp:missing")
    with pytest.raises(AssignmentError, match=r"not a kube_taskqueue\.Provider"):
        load_provider("sampleapp:RecordPayload")
    assert load_provider("sampleapp:provider") is sampleapp.provider
