"""The proposer registry: explicit names, a loud getter."""

from __future__ import annotations

import pytest

from evoforge.agents import PROPOSERS, get_proposer
from evoforge.agents.rtl_rules import RULES
from evoforge.agents.rtl_rules.proposer import OfflineRtlProposer
from evoforge.errors import ConfigError


def test_offline_is_registered_and_dispatches_by_target_kind() -> None:
    from evoforge.agents.base import OfflineProposer
    from evoforge.agents.kernel_templates import OfflineKernelProposer
    from evoforge.domain import TargetKind

    assert "offline" in PROPOSERS
    proposer = get_proposer("offline")
    assert isinstance(proposer, OfflineProposer)
    assert proposer.name == "offline"
    assert isinstance(proposer._for(TargetKind.RTL), OfflineRtlProposer)
    assert isinstance(proposer._for(TargetKind.KERNEL), OfflineKernelProposer)


def test_unknown_proposer_lists_the_valid_names() -> None:
    with pytest.raises(ConfigError, match="offline") as info:
        get_proposer("nope")
    assert "nope" in str(info.value)


def test_unknown_rule_lists_the_valid_rules() -> None:
    assert "resource_sharing" in RULES
    with pytest.raises(ConfigError, match="resource_sharing"):
        OfflineRtlProposer(rules=["nope"])
