"""tollgate-billing migrate | serve"""

from tollgate_billing.app import MIGRATIONS_DIR
from tollgate_billing.config import SERVICE
from tollgate_shared.service_cli import run_service_command


def main() -> None:
    run_service_command(service=SERVICE, default_port=8102, migrations_dir=MIGRATIONS_DIR)


if __name__ == "__main__":
    main()
