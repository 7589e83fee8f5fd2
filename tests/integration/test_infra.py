"""The harness's own dependencies: PostgreSQL, Redis (AOF, fsync always) and the certificate are
what the other tests assume. Fails before any Fieldvault program is involved."""
import ssl
import subprocess


def test_postgres_answers_as_fieldvault(cluster):
    assert cluster.psql("SELECT current_setting('server_version_num')::int / 10000")[0][0] == 15
    owner = cluster.psql("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'fieldvault'")
    assert owner == [("fieldvault",)]


def test_redis_is_durable(cluster):
    assert cluster.redis_cli("CONFIG", "GET", "appendonly") == ["appendonly", "yes"]
    assert cluster.redis_cli("CONFIG", "GET", "appendfsync") == ["appendfsync", "always"]


def test_certificate_is_ecdsa_p256_for_loopback(cluster):
    text = subprocess.run(["openssl", "x509", "-in", str(cluster.cert), "-noout", "-text"],
                          capture_output=True, text=True, check=True).stdout
    assert "prime256v1" in text or "P-256" in text
    assert "IP Address:127.0.0.1" in text
    ctx = ssl.create_default_context(cafile=str(cluster.cert))  # loads as a trust anchor
    assert ctx.cert_store_stats()["x509"] == 1


def test_migrations_create_the_schema(migrated):
    tables = {r[0] for r in migrated.psql(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")}
    assert {"users", "api_keys", "orgs", "surveys", "deployments", "responses", "audit"} <= tables
    owner = migrated.psql("SELECT tableowner FROM pg_tables WHERE tablename = 'responses'")
    assert owner == [("fieldvault",)]


def test_migrate_is_idempotent(migrated):
    before = migrated.psql("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'")
    migrated.migrate()
    after = migrated.psql("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'")
    assert before == after
