"""Litestar glue, in the manner of Litestar's SQLAlchemy plugin: a config object, the
engine opened on start-up and closed on shutdown, and the engine and views injected into
handlers by dependency injection.

::

    from litestar import Litestar, get
    from ciuf import Engine, View
    from ciuf.contrib.litestar import CiufConfig, CiufPlugin

    config = CiufConfig(metadata=Base.metadata, bind=sa_engine, track=[SessionLocal],
                        views={"totals": "SELECT customer_id, SUM(amount) AS total FROM orders GROUP BY customer_id"})

    @get("/totals")
    async def totals(totals: View) -> list[dict]:        # a view, by its configured name
        return totals.query().to_dicts()

    @get("/tables")
    async def tables(ciuf: Engine) -> list[str]:          # the engine, as config.engine_key
        return ciuf.tables()

    app = Litestar([totals, tables], plugins=[CiufPlugin(config)])
"""

from __future__ import annotations

from typing import Any

from litestar.config.app import AppConfig
from litestar.di import Provide
from litestar.plugins import InitPluginProtocol

from .. import Engine, View
from .app import CiufApp, CiufConfig

__all__ = ["CiufConfig", "CiufPlugin"]


class CiufPlugin(InitPluginProtocol, CiufApp):
    """Opens a ciuf engine with the app and provides it (and its views) to handlers."""

    def __init__(self, config: CiufConfig) -> None:
        CiufApp.__init__(self, config)

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        app_config.on_startup.append(self._on_startup)
        app_config.on_shutdown.append(self._on_shutdown)
        deps = app_config.dependencies
        deps[self.config.engine_key] = Provide(self._provide_engine, sync_to_thread=False)
        for name in self.config.views:
            deps[name] = Provide(self._view_provider(name), sync_to_thread=False)
        app_config.signature_namespace.update({"Engine": Engine, "View": View})
        return app_config

    def _on_startup(self, app: Any) -> None:
        engine = self.start()
        app.state[self.config.engine_key] = engine

    def _on_shutdown(self, app: Any) -> None:
        self.stop()

    def _provide_engine(self) -> Engine:
        return self.engine

    def _view_provider(self, name: str) -> Any:
        def provide() -> View:
            return self.view(name)

        return provide
