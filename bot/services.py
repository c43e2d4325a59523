"""The services a running bot shares: built once per process, handed to every handler."""

from dataclasses import dataclass, field
from datetime import timedelta

from bot.approvals.policy import Policy
from bot.approvals.service import ProposalService
from bot.config import Settings
from bot.restore_work.jobs import RestoreJobs
from bot.scribe.incidents import IncidentService
from bot.scribe.names import UserDirectory
from bot.scribe.runofshow import RunOfShowService
from bot.scribe.timeline import TimelineService
from bot.store.session import Store


@dataclass
class Services:
    settings: Settings
    store: Store
    incidents: IncidentService
    timeline: TimelineService
    runofshow: RunOfShowService
    approvals: ProposalService
    jobs: RestoreJobs
    names: UserDirectory = field(default_factory=lambda: UserDirectory(lambda _user: None))

    @classmethod
    def create(cls, settings: Settings, store: Store | None = None) -> "Services":
        store = store or Store(settings.database_url)
        timeline = TimelineService(store)
        approvals = ProposalService(store, settings.all_targets, policy_from(settings))
        return cls(
            settings=settings,
            store=store,
            incidents=IncidentService(store),
            timeline=timeline,
            runofshow=RunOfShowService(store),
            approvals=approvals,
            jobs=RestoreJobs(settings, store, timeline, approvals),
        )


def policy_from(settings: Settings) -> Policy:
    return Policy(
        approvals_required=settings.approvals_required,
        approvers=tuple(settings.approvers),
        approver_group=settings.approver_group,
        ttl=timedelta(minutes=settings.proposal_ttl_minutes),
    )
