"""kopf's own settings as the operator configures them."""

from __future__ import annotations

import kopf
from kube_taskqueue_operator.handlers import configure_kopf
from kube_taskqueue_operator.settings import OperatorSettings


def test_kopf_waits_long_enough_for_its_own_patch_before_taking_a_later_body():
    """Past kopf's consistency timeout it processes the next event's body as current; when
    that is the reconcile's own status patch (no handled-configuration annotation yet), it
    runs the creation handler again. 5 s (kopf's default) was too short at 1,000 TaskQueues
    created at once: 768 ran twice, each a full queue check."""
    settings = kopf.OperatorSettings()
    assert settings.persistence.consistency_timeout < 30  # kopf's default, for contrast
    configure_kopf(settings, OperatorSettings(), tls=None)
    assert settings.persistence.consistency_timeout >= 30
