"""FastAPI glue: the engine opened in the app's lifespan, and ``Depends`` providers.

::

    from fastapi import Depends, FastAPI
    from ciuf.contrib.fastapi import Ciuf

    ciuf = Ciuf(metadata=Base.metadata, bind=sa_engine, track=[SessionLocal],
                views={"totals": "SELECT customer_id, SUM(amount) AS total FROM orders GROUP BY customer_id"})
    app = FastAPI(lifespan=ciuf.lifespan)

    @app.get("/totals")
    def totals(view: View = Depends(ciuf.view("totals"))):
        return view.query().to_dicts()

To combine with a lifespan of your own, enter ``ciuf.lifespan(app)`` inside it.
"""

from __future__ import annotations

import contextlib
from typing import Any, AsyncIterator, Callable

from .. import Engine, View
from .app import CiufApp, CiufConfig

__all__ = ["Ciuf", "CiufConfig"]


class Ciuf(CiufApp):
    """A ciuf engine for one FastAPI app (options as :class:`CiufConfig`)."""

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Any) -> AsyncIterator[None]:
        """Opens the engine at start-up (also set as ``app.state.ciuf``), closes it at
        shutdown."""
        engine = self.start()
        state = getattr(app, "state", None)
        if state is not None:
            state.ciuf = engine
        try:
            yield
        finally:
            self.stop()

    def get_engine(self) -> Engine:
        """A dependency: ``engine: Engine = Depends(ciuf.get_engine)``."""
        return self.engine

    def view(self, name: str) -> Callable[[], View]:  # type: ignore[override]
        """A dependency giving the view ``name``: ``Depends(ciuf.view("totals"))``."""

        def dependency() -> View:
            return CiufApp.view(self, name)

        return dependency
