"""``python -m batchling.testing``: run the fake provider server until interrupted."""

from __future__ import annotations

import argparse
import threading

from batchling.testing.server import FakeProviderServer


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m batchling.testing", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument(
        "--batch-delay", type=float, default=0.0, help="seconds a batch stays in_progress"
    )
    args = parser.parse_args(argv)
    with FakeProviderServer(
        batch_delay_seconds=args.batch_delay, port=args.port, host=args.host
    ) as server:
        print(f"Fake provider server on {server.url}")
        print(f"  OPENAI_BASE_URL={server.openai_base_url}")
        print(f"  ANTHROPIC_BASE_URL={server.anthropic_base_url}")
        print(f"  GOOGLE_GEMINI_BASE_URL={server.gemini_base_url}")
        print(f"  Groq (OpenAI SDK base_url): {server.groq_base_url}")
        print(f"  xAI (OpenAI SDK base_url): {server.xai_base_url}")
        print(
            f"  Together (OpenAI SDK base_url, with the TOGETHER host profile registered for "
            f"it): {server.together_base_url}"
        )
        print(f"  AZURE_OPENAI_ENDPOINT={server.azure_endpoint}")
        print(f"  Mistral (Mistral(server_url=...)): {server.mistral_base_url}", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            print("stopping")


if __name__ == "__main__":
    main()
