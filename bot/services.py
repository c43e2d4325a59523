"""The services a running bot shares: built once per process, handed to every handler."""

from dataclasses import dataclass, field

from bot.config import Settings
from bot.directory import UserDirectory
from bot.incidents import IncidentService
from bot.runofshow import RunOfShowService
from bot.store.session import Store
from bot.timeline import TimelineService


@dataclass
class Services:
    settings: Settings
    store: Store
    incidents: IncidentService
    timeline: TimelineService
    runofshow: RunOfShowService
    names: UserDirectory = field(default_factory=lambda: UserDirectory(lambda _user: None))

    @classmethod
    def create(cls, settings: Settings, store: Store | None = None) -> "Services":
        store = store or Store(settings.database_url)
        return cls(
            settings=settings,
            store=store,
            incidents=IncidentService(store),
            timeline=TimelineService(store),
            runofshow=RunOfShowService(store),
        )
