"""What a web app needs from ciuf, whatever the framework: an Engine opened at start-up
with its tables and views, SQLAlchemy sessions tracked, and everything closed at
shutdown. The Litestar plugin and the FastAPI helper are thin layers over this."""

from __future__ import annotations

from dataclasses import dataclass, field
import os
from typing import Any, Callable, Iterable, Literal, Mapping, Optional, Union

from .. import Engine, View


@dataclass
class CiufConfig:
    """How a web app's ciuf Engine is opened.

    url: the source (None: in memory).
    ddl: CREATE TABLE statements for an in-memory engine.
    metadata, bind: SQLAlchemy MetaData (or Tables) to mirror as ciuf tables, and the
        SQLAlchemy engine whose current rows are loaded into them at start-up.
    tables: limits ``metadata`` to these table names.
    track: SQLAlchemy sessionmakers (or async_sessionmakers, sessions) whose committed
        ORM writes are applied to the engine (:func:`ciuf.sqlalchemy.track`).
    views: views registered at start-up, by name, injected into handlers by that name.
    setup: called with the engine after the above, for anything else.
    engine_key: the name handlers ask for the engine by.
    state_dir: where the engine keeps its state, so that a restart (a deploy, a crash)
        comes back with its tables, views and source position instead of loading
        afresh; restored tables are not created or loaded again, and restored views
        are used as they are (see the README's "Durable state").
    durability: "sync" (each commit durable before it returns) or "grouped".
    """

    url: Optional[str] = None
    ddl: Iterable[str] = ()
    metadata: Any = None
    bind: Any = None
    tables: Optional[Iterable[str]] = None
    track: Iterable[Any] = ()
    views: Mapping[str, str] = field(default_factory=dict)
    setup: Optional[Callable[[Engine], None]] = None
    engine_key: str = "ciuf"
    state_dir: Optional[Union[str, "os.PathLike[str]"]] = None
    durability: Literal["sync", "grouped"] = "sync"


class CiufApp:
    """The engine of one app: :meth:`start` at start-up, :meth:`stop` at shutdown."""

    def __init__(self, config: Optional[CiufConfig] = None, **options: Any) -> None:
        self.config = config if config is not None else CiufConfig(**options)
        self._engine: Optional[Engine] = None
        self._views: dict[str, View] = {}
        self._trackers: list[Any] = []

    @property
    def engine(self) -> Engine:
        """The running engine (RuntimeError before start-up or after shutdown)."""
        if self._engine is None:
            raise RuntimeError("the ciuf engine is not running: the app has not started, or has stopped")
        return self._engine

    def view(self, name: str) -> View:
        """The view registered under ``name`` at start-up."""
        self.engine  # noqa: B018 - raises when not running
        try:
            return self._views[name]
        except KeyError:
            raise KeyError(f"no ciuf view {name!r}; the configured views are {sorted(self._views)}") from None

    def start(self) -> Engine:
        c = self.config
        if c.state_dir is not None:
            engine = Engine(c.url, state_dir=c.state_dir, durability=c.durability)
        else:
            engine = Engine(c.url)
        # A durable engine that restarted holds its tables and views already.
        restored = c.state_dir is not None and bool(engine.tables())
        try:
            if not restored:
                for ddl in c.ddl:
                    engine.execute(ddl)
                if c.metadata is not None:
                    from ..sqlalchemy import mirror

                    mirror(engine, c.metadata, bind=c.bind, tables=c.tables)
            for name, sql in c.views.items():
                self._views[name] = engine.view(name) or engine.create_view(name, sql)
            if c.track:
                from ..sqlalchemy import track

                self._trackers = [track(engine, t) for t in c.track]
            if c.setup is not None:
                c.setup(engine)
        except BaseException:
            self._close(engine)
            raise
        self._engine = engine
        return engine

    def stop(self) -> None:
        if self._engine is not None:
            self._close(self._engine)
            self._engine = None

    def _close(self, engine: Engine) -> None:
        for t in self._trackers:
            t.close()
        self._trackers = []
        self._views = {}
        engine.close()
