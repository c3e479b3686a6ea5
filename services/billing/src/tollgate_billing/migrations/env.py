from tollgate_shared.migrations import run_migrations_online

run_migrations_online()
