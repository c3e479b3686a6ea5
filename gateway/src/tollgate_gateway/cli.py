"""tollgate-gateway serve"""

import argparse

import uvicorn


def main() -> None:
    parser = argparse.ArgumentParser(prog="tollgate-gateway")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the gateway")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    arguments = parser.parse_args()
    uvicorn.run(
        "tollgate_gateway.app:create_app",
        factory=True,
        host=arguments.host,
        port=arguments.port,
        log_config=None,
        # X-Forwarded-* from clients are not trusted; the gateway sets its own for upstreams.
        proxy_headers=False,
    )


if __name__ == "__main__":
    main()
