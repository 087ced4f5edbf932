"""Framework glue: a Litestar plugin (:mod:`ciuf.contrib.litestar`) and a FastAPI
helper (:mod:`ciuf.contrib.fastapi`), both built on :class:`ciuf.contrib.app.CiufApp`."""
