"""Development sessions: `nox -s tests` (newest and oldest supported SDKs), `lint`, `typecheck`."""

from __future__ import annotations

import nox

nox.needs_version = ">=2024.10"
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_venv = "yes"

PYPROJECT = nox.project.load_toml("pyproject.toml")

# The oldest and newest releases of each SDK the suite must pass on. openai 2.x still runs on
# `httpx`, 3.x on `httpx2`: users have both installed today.
SDK_PINS = {
    "newest": ["openai>=3", "anthropic>=2", "google-genai>=3", "mistralai>=3"],
    "oldest": ["openai==2.0.0", "anthropic==2.0.0", "google-genai==3.4.0", "mistralai==3.0.0"],
}


@nox.session
@nox.parametrize("sdks", list(SDK_PINS))
def tests(session: nox.Session, sdks: str) -> None:
    """Run the test suite against the newest and the oldest supported SDK releases."""
    session.install("-e", ".[all]", *nox.project.dependency_groups(PYPROJECT, "test"))
    # A separate third-party plugin distribution, loaded through its entry point.
    session.install("-e", "tests/plugin_package")
    session.install(*SDK_PINS[sdks])
    # One worker per core (pytest-xdist): tests share no ports or files. `-n 0` runs them in
    # one process, e.g. `nox -s tests -- -n 0 -x`.
    session.run("pytest", "-n", "auto", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """Check style and formatting with ruff."""
    session.install(*nox.project.dependency_groups(PYPROJECT, "lint"))
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """Type-check src/ with mypy --strict."""
    session.install("-e", ".[all]", *nox.project.dependency_groups(PYPROJECT, "typecheck"))
    session.run("mypy")


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """Measure idle overhead, scale and latency; write benchmarks/RESULTS.md."""
    session.install("-e", ".[all]", *nox.project.dependency_groups(PYPROJECT, "bench"))
    session.run("python", "-m", "benchmarks", *session.posargs)


@nox.session
def frameworks(session: nox.Session) -> None:
    """Prove LangChain, Instructor, Pydantic AI, LiteLLM and DSPy calls are batched."""
    session.install("-e", ".[all]", *nox.project.dependency_groups(PYPROJECT, "test", "frameworks"))
    # instructor pins jiter<0.15, which would hold openai (and with it pydantic-ai) years back;
    # it runs fine on the current jiter.
    session.install("--no-deps", "instructor")
    session.run("pytest", "-n", "auto", "tests_frameworks", *session.posargs)


@nox.session(default=False)
def docs(session: nox.Session) -> None:
    """Build the documentation site with mkdocs --strict (no broken links)."""
    session.install("-e", ".[all]", *nox.project.dependency_groups(PYPROJECT, "docs"))
    session.run("mkdocs", "build", "--strict", *session.posargs)
