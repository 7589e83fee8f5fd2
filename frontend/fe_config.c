/* fv-frontend's configuration table: the one place its keys, defaults and help live. */
#include "fe_config.h"

fe_settings fe_cfg;
fv_keyset fe_keys;

const fv_cfg_entry fe_config_table[] = {
    FV_COMMON_CFG_ENTRIES,
    {"frontend", "listen_addr", FV_CFG_STR, &fe_cfg.listen_addr, "127.0.0.1",
     "address the HTTPS port binds (an IP address)"},
    {"frontend", "listen_port", FV_CFG_INT, &fe_cfg.listen_port, "8443", "HTTPS port"},
    {"frontend", "processes", FV_CFG_INT, &fe_cfg.processes, "0",
     "worker children serving requests; 0 means one per CPU"},
    {"frontend", "tls_cert", FV_CFG_STR, &fe_cfg.tls_cert, "/etc/fieldvault/tls/cert.pem",
     "PEM certificate chain (an ECDSA P-256 key is fastest)"},
    {"frontend", "tls_key", FV_CFG_STR, &fe_cfg.tls_key, "/etc/fieldvault/tls/key.pem",
     "PEM private key of tls_cert"},
    {"frontend", "max_body_bytes", FV_CFG_INT, &fe_cfg.max_body_bytes, "1048576",
     "largest request body accepted; larger ones get 413"},
    {"frontend", "pg_pool_size", FV_CFG_INT, &fe_cfg.pg_pool_size, "4",
     "PostgreSQL connections per child"},
    {"frontend", "pg_timeout_ms", FV_CFG_INT, &fe_cfg.pg_timeout_ms, "5000",
     "a PostgreSQL query slower than this fails its request with 503"},
    {"frontend", "redis_timeout_ms", FV_CFG_INT, &fe_cfg.redis_timeout_ms, "5000",
     "a Redis command unanswered this long fails its request with 503"},
    {"frontend", "auth_cache_ttl_s", FV_CFG_INT, &fe_cfg.auth_cache_ttl_s, "30",
     "seconds an API key lookup is cached in a child"},
    {"frontend", "deployment_cache_ttl_s", FV_CFG_INT, &fe_cfg.deployment_cache_ttl_s, "10",
     "seconds a deployment's form and a submitter's permission are cached in a child"},
    {"frontend", "cache_stale_s", FV_CFG_INT, &fe_cfg.cache_stale_s, "3600",
     "while PostgreSQL is down, cached keys and deployments older than their TTL still serve this long"},
    {"frontend", "redis_cache_ttl_s", FV_CFG_INT, &fe_cfg.redis_cache_ttl_s, "600",
     "seconds API key and deployment lookups are shared with other children and front ends in Redis"},
    {"frontend", "keepalive_timeout_s", FV_CFG_INT, &fe_cfg.keepalive_timeout_s, "60",
     "idle keep-alive connections are closed after this many seconds"},
    {"frontend", "shutdown_timeout_s", FV_CFG_INT, &fe_cfg.shutdown_timeout_s, "10",
     "on SIGTERM, in-flight requests get this long to finish before children are killed"},
    {"frontend", "access_log", FV_CFG_BOOL, &fe_cfg.access_log, "yes",
     "one JSON line per request on stderr"},
    {"frontend", "spool_dir", FV_CFG_STR, &fe_cfg.spool_dir, "/var/lib/fieldvault/spool",
     "directory of the local spool that keeps submissions while Redis is down"},
    {"frontend", "spool_max_mb", FV_CFG_INT, &fe_cfg.spool_max_mb, "1024",
     "largest size of one child's spool file in MiB; when full, submissions get 503"},
    {"frontend", "revocation_poll_ms", FV_CFG_INT, &fe_cfg.revocation_poll_ms, "1000",
     "how often each child reads new revocations (logouts, revoked keys, removed members)"},
    /* ---- identity ---- */
    {"frontend", "signup_open", FV_CFG_BOOL, &fe_cfg.signup_open, "yes",
     "anyone may create an account with POST /v1/users; no: 403 signup_closed"},
    {"frontend", "password_iterations", FV_CFG_INT, &fe_cfg.password_iterations, "600000",
     "PBKDF2-HMAC-SHA256 iterations of new password hashes (at least 600000); older hashes are rehashed at login"},
    {"frontend", "password_threads", FV_CFG_INT, &fe_cfg.password_threads, "2",
     "threads per child that hash and check passwords off the event loop"},
    {"frontend", "session_ttl_s", FV_CFG_INT, &fe_cfg.session_ttl_s, "43200",
     "seconds a session token from login stays valid"},
    {"frontend", "min_password_score", FV_CFG_INT, &fe_cfg.min_password_score, "3",
     "zxcvbn score (0..4) a new password needs on sign-up and change"},
    {"frontend", "login_max_failures_account", FV_CFG_INT, &fe_cfg.login_max_failures_account, "5",
     "failed logins per account within login_window_s before 429"},
    {"frontend", "login_max_failures_address", FV_CFG_INT, &fe_cfg.login_max_failures_address, "20",
     "failed logins per client address within login_window_s before 429; 0: no per-address limit"},
    {"frontend", "login_window_s", FV_CFG_INT, &fe_cfg.login_window_s, "900",
     "window (seconds, from the first failure) over which failed logins are counted"},
    /* ---- identity end ---- */
    /* ---- api keys ---- */
    {"frontend", "api_key_rate_limit", FV_CFG_INT, &fe_cfg.api_key_rate_limit, "600",
     "requests one API key may make per window (all front ends together); 0 turns the limit off"},
    {"frontend", "api_key_rate_window_s", FV_CFG_INT, &fe_cfg.api_key_rate_window_s, "60",
     "length in seconds of the API key rate-limit window"},
    {"frontend", "api_key_suspend_after", FV_CFG_INT, &fe_cfg.api_key_suspend_after, "5",
     "windows in which a key hit its limit, within an hour, after which it is suspended; 0 = never"},
    {"frontend", "api_key_create_with_key", FV_CFG_BOOL, &fe_cfg.api_key_create_with_key, "no",
     "whether a caller authenticated by an API key (not a session) may create API keys"},
    /* ---- api keys end ---- */
    /* ---- orgs ---- */
    /* ---- orgs end ---- */
    /* ---- access ---- */
    /* ---- access end ---- */
    /* ---- sites ---- */
    /* ---- sites end ---- */
    {NULL, NULL, 0, NULL, NULL, NULL},
};
