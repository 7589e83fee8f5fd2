/* fv-frontend's configuration table: the one place its keys, defaults and help live. */
#include "fe_config.h"

#include <limits.h>
#include <string.h>

#include "fe_metrics_http.h"

fe_settings fe_cfg;
fv_keyset fe_keys;

const fv_cfg_entry fe_config_table[] = {
    FV_COMMON_CFG_ENTRIES,
    FV_CFG_STR_KEY("frontend", "listen_addr", &fe_cfg.listen_addr, "127.0.0.1", FV_CFG_RESTART,
                   "address the HTTPS port binds (an IP address)"),
    FV_CFG_INT_KEY("frontend", "listen_port", &fe_cfg.listen_port, "8443", 1, 65535, FV_CFG_RESTART,
                   "HTTPS port"),
    FV_CFG_INT_KEY("frontend", "processes", &fe_cfg.processes, "0", 0, INT_MAX, FV_CFG_RESTART,
                   "worker children serving requests; 0 means one per CPU"),
    FV_CFG_STR_KEY("frontend", "tls_cert", &fe_cfg.tls_cert, "/etc/fieldvault/tls/cert.pem",
                   FV_CFG_RESTART, "PEM certificate chain (an ECDSA P-256 key is fastest)"),
    FV_CFG_STR_KEY("frontend", "tls_key", &fe_cfg.tls_key, "/etc/fieldvault/tls/key.pem", FV_CFG_RESTART,
                   "PEM private key of tls_cert"),
    FV_CFG_STR_KEY("frontend", "tls_ocsp_response", &fe_cfg.tls_ocsp_response, "", FV_CFG_RESTART,
                   "DER OCSP response for tls_cert to staple (refreshed by the operator, reread on "
                   "SIGHUP); empty: no stapling"),
    FV_CFG_INT_KEY("frontend", "max_body_bytes", &fe_cfg.max_body_bytes, "1048576", 1024, 67108864,
                   FV_CFG_RESTART, "largest request body accepted; larger ones get 413"),
    FV_CFG_INT_KEY("frontend", "pg_pool_size", &fe_cfg.pg_pool_size, "4", 1, INT_MAX, FV_CFG_RESTART,
                   "PostgreSQL connections per child"),
    FV_CFG_INT_KEY("frontend", "pg_timeout_ms", &fe_cfg.pg_timeout_ms, "5000", 1, 3600000,
                   FV_CFG_RESTART, "a PostgreSQL query slower than this fails its request with 503"),
    FV_CFG_INT_KEY("frontend", "redis_timeout_ms", &fe_cfg.redis_timeout_ms, "5000", 1, 3600000,
                   FV_CFG_RESTART, "a Redis command unanswered this long fails its request with 503"),
    FV_CFG_INT_KEY("frontend", "auth_cache_ttl_s", &fe_cfg.auth_cache_ttl_s, "30", 0, 86400,
                   FV_CFG_RESTART, "seconds an API key lookup is cached in a child"),
    FV_CFG_INT_KEY("frontend", "openrosa_basic_cache_ttl_s", &fe_cfg.openrosa_basic_cache_ttl_s, "60", 0,
                   3600, FV_CFG_RESTART,
                   "seconds a checked HTTP Basic credential of the OpenRosa routes is reused in a child "
                   "(0: PBKDF2 on every request)"),
    FV_CFG_INT_KEY("frontend", "deployment_cache_ttl_s", &fe_cfg.deployment_cache_ttl_s, "10", 0, 86400,
                   FV_CFG_RESTART,
                   "seconds a deployment's form and a submitter's permission are cached in a child"),
    FV_CFG_INT_KEY(
        "frontend", "cache_stale_s", &fe_cfg.cache_stale_s, "3600", 0, 604800, FV_CFG_RESTART,
        "while PostgreSQL is down, cached keys and deployments older than their TTL still serve this long"),
    FV_CFG_INT_KEY(
        "frontend", "redis_cache_ttl_s", &fe_cfg.redis_cache_ttl_s, "600", 1, 86400, FV_CFG_RESTART,
        "seconds API key and deployment lookups are shared with other children and front ends in Redis"),
    FV_CFG_INT_KEY("frontend", "keepalive_timeout_s", &fe_cfg.keepalive_timeout_s, "60", 1, 3600,
                   FV_CFG_RESTART, "idle keep-alive connections are closed after this many seconds"),
    FV_CFG_INT_KEY("frontend", "shutdown_timeout_s", &fe_cfg.shutdown_timeout_s, "10", 0, 3600,
                   FV_CFG_RESTART,
                   "on SIGTERM, in-flight requests get this long to finish before children are killed"),
    FV_CFG_BOOL_KEY("frontend", "access_log", &fe_cfg.access_log, "yes", FV_CFG_RESTART,
                    "one JSON line per request on stderr"),
    FV_CFG_STR_KEY("frontend", "spool_dir", &fe_cfg.spool_dir, "/var/lib/fieldvault/spool",
                   FV_CFG_RESTART,
                   "directory of the local spool that keeps submissions while Redis is down"),
    FV_CFG_INT_KEY("frontend", "spool_max_mb", &fe_cfg.spool_max_mb, "1024", 1, 1048576, FV_CFG_RESTART,
                   "largest size of one child's spool file in MiB; when full, submissions get 503"),
    FV_CFG_INT_KEY(
        "frontend", "revocation_poll_ms", &fe_cfg.revocation_poll_ms, "1000", 10, 3600000,
        FV_CFG_RESTART,
        "how often each child reads new revocations (logouts, revoked keys, removed members)"),
    /* ---- identity ---- */
    FV_CFG_BOOL_KEY("frontend", "signup_open", &fe_cfg.signup_open, "yes", FV_CFG_RESTART,
                    "anyone may create an account with POST /v1/users; no: 403 signup_closed"),
    FV_CFG_INT_KEY(
        "frontend", "password_iterations", &fe_cfg.password_iterations, "600000", 600000, 10000000,
        FV_CFG_RESTART,
        "PBKDF2-HMAC-SHA256 iterations of new password hashes (at least 600000); older hashes are rehashed at login"),
    FV_CFG_INT_KEY("frontend", "password_threads", &fe_cfg.password_threads, "2", 1, 64, FV_CFG_RESTART,
                   "threads per child that hash and check passwords off the event loop"),
    FV_CFG_INT_KEY("frontend", "session_ttl_s", &fe_cfg.session_ttl_s, "43200", 60, INT_MAX,
                   FV_CFG_RESTART, "seconds a session token from login stays valid"),
    FV_CFG_INT_KEY("frontend", "min_password_score", &fe_cfg.min_password_score, "3", 0, 4,
                   FV_CFG_RESTART, "zxcvbn score (0..4) a new password needs on sign-up and change"),
    FV_CFG_INT_KEY("frontend", "login_max_failures_account", &fe_cfg.login_max_failures_account, "5", 1,
                   INT_MAX, FV_CFG_RESTART,
                   "failed logins for one account from one client address within login_window_s before "
                   "that address gets 429 for it"),
    FV_CFG_INT_KEY(
        "frontend", "login_max_failures_address", &fe_cfg.login_max_failures_address, "20", 0, INT_MAX,
        FV_CFG_RESTART,
        "failed logins per client address within login_window_s before 429; 0: no per-address limit"),
    FV_CFG_INT_KEY("frontend", "login_window_s", &fe_cfg.login_window_s, "900", 1, INT_MAX,
                   FV_CFG_RESTART,
                   "window (seconds, from the first failure) over which failed logins are counted"),
    FV_CFG_INT_KEY("frontend", "password_reserved_threads", &fe_cfg.password_reserved_threads, "1", 0,
                   63, FV_CFG_RESTART,
                   "of password_threads, how many check only logins and signed-in users' passwords, "
                   "never sign-ups (at most password_threads - 1 are)"),
    FV_CFG_INT_KEY("frontend", "password_queue_auth", &fe_cfg.password_queue_auth, "32", 1, 65536,
                   FV_CFG_RESTART,
                   "logins and password checks waiting for a thread per child; more: 503 + Retry-After"),
    FV_CFG_INT_KEY("frontend", "password_queue_signup", &fe_cfg.password_queue_signup, "8", 1, 65536,
                   FV_CFG_RESTART, "sign-ups waiting for a thread per child; more: 503 + Retry-After"),
    FV_CFG_INT_KEY("frontend", "signup_window_s", &fe_cfg.signup_window_s, "600", 1, 86400,
                   FV_CFG_RESTART, "window (seconds) over which sign-ups are counted"),
    FV_CFG_INT_KEY("frontend", "signup_max_per_address", &fe_cfg.signup_max_per_address, "10", 0,
                   INT_MAX, FV_CFG_RESTART,
                   "sign-ups one client address may make per window in a child; 0: no limit"),
    FV_CFG_INT_KEY("frontend", "signup_max_per_child", &fe_cfg.signup_max_per_child, "100", 0, INT_MAX,
                   FV_CFG_RESTART,
                   "sign-ups one child accepts per window from all addresses; 0: no limit"),
    FV_CFG_INT_KEY("frontend", "login_account_delay_after", &fe_cfg.login_account_delay_after, "10", 1,
                   INT_MAX, FV_CFG_RESTART,
                   "failed logins for one account (from all addresses) within login_window_s after "
                   "which each login for it is delayed (never refused)"),
    FV_CFG_INT_KEY("frontend", "login_account_delay_ms", &fe_cfg.login_account_delay_ms, "250", 0, 60000,
                   FV_CFG_RESTART,
                   "the first such delay; it doubles with each further failure, up to "
                   "login_account_delay_max_ms"),
    FV_CFG_INT_KEY("frontend", "login_account_delay_max_ms", &fe_cfg.login_account_delay_max_ms, "3000",
                   0, 60000, FV_CFG_RESTART, "the longest delay of a login for an account under attack"),
    FV_CFG_INT_KEY("frontend", "session_rate_limit", &fe_cfg.session_rate_limit, "600", 0, INT_MAX,
                   FV_CFG_RESTART,
                   "requests one user may make per window with session tokens (all front ends "
                   "together); 0 turns the limit off"),
    FV_CFG_INT_KEY("frontend", "session_rate_window_s", &fe_cfg.session_rate_window_s, "60", 1, 86400,
                   FV_CFG_RESTART, "length in seconds of the session rate-limit window"),
    /* ---- identity end ---- */
    /* ---- api keys ---- */
    FV_CFG_INT_KEY(
        "frontend", "api_key_rate_limit", &fe_cfg.api_key_rate_limit, "600", 0, INT_MAX, FV_CFG_RESTART,
        "requests one API key may make per window (all front ends together); 0 turns the limit off"),
    FV_CFG_INT_KEY("frontend", "api_key_rate_window_s", &fe_cfg.api_key_rate_window_s, "60", 1, 86400,
                   FV_CFG_RESTART, "length in seconds of the API key rate-limit window"),
    FV_CFG_INT_KEY(
        "frontend", "api_key_suspend_after", &fe_cfg.api_key_suspend_after, "5", 0, 3600, FV_CFG_RESTART,
        "windows in which a key hit its limit, within an hour, after which it is suspended; 0 = never"),
    FV_CFG_BOOL_KEY("frontend", "api_key_create_with_key", &fe_cfg.api_key_create_with_key, "no",
                    FV_CFG_RESTART,
                    "whether a caller authenticated by an API key (not a session) may create API keys"),
    /* ---- api keys end ---- */
    /* ---- orgs ---- */
    FV_CFG_INT_KEY("frontend", "invitation_ttl_s", &fe_cfg.invitation_ttl_s, "604800", 60, 2592000,
                   FV_CFG_RESTART, "seconds an invitation to an organisation stays open"),
    FV_CFG_INT_KEY("frontend", "invitation_max_pending_per_org", &fe_cfg.invitation_max_pending_per_org,
                   "1000", 1, 100000, FV_CFG_RESTART,
                   "open invitations one organisation may have at once; more: 409"),
    FV_CFG_INT_KEY("frontend", "invitation_max_per_org_hour", &fe_cfg.invitation_max_per_org_hour, "200",
                   1, 100000, FV_CFG_RESTART,
                   "invitations one organisation may make per hour; more: 429"),
    /* ---- orgs end ---- */
    /* ---- access ---- */
    FV_CFG_INT_KEY("frontend", "submission_claim_ttl_s", &fe_cfg.submission_claim_ttl_s, "3600", 0,
                   604800, FV_CFG_RESTART,
                   "seconds a submission id stays claimed in Redis: a reuse by another submitter "
                   "gets 409 at once; 0 = no claims"),
    FV_CFG_STR_KEY(
        "frontend", "public_url", &fe_cfg.public_url, "", FV_CFG_RESTART,
        "the https:// origin clients reach the front ends at (no path, no trailing /): the "
        "start of each deployment's openrosa_url; empty: https://<listen_addr>:<listen_port>"),
    FV_CFG_INT_KEY("frontend", "openrosa_max_body_bytes", &fe_cfg.openrosa_max_body_bytes, "10485760",
                   65536, 11534336, FV_CFG_RESTART,
                   "largest body of an OpenRosa submission (XML and attachments), announced in "
                   "X-OpenRosa-Accept-Content-Length; larger ones get 413"),
    FV_CFG_INT_KEY("frontend", "openrosa_max_parts", &fe_cfg.openrosa_max_parts, "100", 2, 1000,
                   FV_CFG_RESTART,
                   "multipart parts (the XML and its attachments) of one OpenRosa submission"),
    FV_CFG_INT_KEY("frontend", "openrosa_degraded_max_bytes", &fe_cfg.openrosa_degraded_max_bytes,
                   "4194304", 0, 11534336, FV_CFG_RESTART,
                   "while PostgreSQL is down, an OpenRosa submission with at most this many attachment "
                   "bytes is still queued (202); a larger one gets 503 with Retry-After"),
    FV_CFG_INT_KEY("frontend", "openrosa_store_wait_ms", &fe_cfg.openrosa_store_wait_ms, "3000", 0,
                   30000, FV_CFG_RESTART,
                   "how long an OpenRosa submission waits for a worker to store it (201) before it is "
                   "answered 202 (queued)"),
    FV_CFG_INT_KEY("frontend", "openrosa_org_quota_mb", &fe_cfg.openrosa_org_quota_mb, "10240", 1,
                   INT_MAX, FV_CFG_RESTART,
                   "MiB of attachments one organisation may hold; a submission past it gets 413"),
    /* ---- access end ---- */
    /* ---- sites ---- */
    /* ---- sites end ---- */
    /* ---- http limits ---- */
    FV_CFG_INT_KEY(
        "frontend", "tls_handshake_timeout_s", &fe_cfg.tls_handshake_timeout_s, "10", 1, 300,
        FV_CFG_RESTART,
        "a connection that has not finished its TLS handshake this long after accept is closed"),
    FV_CFG_INT_KEY(
        "frontend", "header_timeout_s", &fe_cfg.header_timeout_s, "20", 1, 3600, FV_CFG_RESTART,
        "a request head not complete this long after accept (or after its first byte) gets 408 and the connection closes"),
    FV_CFG_INT_KEY(
        "frontend", "request_timeout_s", &fe_cfg.request_timeout_s, "60", 1, 3600, FV_CFG_RESTART,
        "a request (head and body) not complete this long after it began closes its connection"),
    FV_CFG_INT_KEY("frontend", "max_header_bytes", &fe_cfg.max_header_bytes, "16384", 1024, 1048576,
                   FV_CFG_RESTART, "largest request head (request line and headers); larger gets 431"),
    FV_CFG_INT_KEY("frontend", "max_headers", &fe_cfg.max_headers, "100", 1, 10000, FV_CFG_RESTART,
                   "most header fields in a request; more gets 431"),
    FV_CFG_INT_KEY(
        "frontend", "max_connections", &fe_cfg.max_connections, "10000", 1, 1000000, FV_CFG_RESTART,
        "open client connections per child; at the cap the child stops accepting until one closes (clamped below RLIMIT_NOFILE)"),
    FV_CFG_INT_KEY(
        "frontend", "max_connections_per_address", &fe_cfg.max_connections_per_address, "256", 0,
        1000000, FV_CFG_RESTART,
        "open connections per client address per child; more are closed at once; 0: no limit (behind fv-balancer)"),
    /* ---- http limits end ---- */
    /* ---- metrics ---- */
    FV_CFG_STR_KEY("frontend", "metrics_listen", &fe_cfg.metrics_listen, "", FV_CFG_RESTART,
                   "IP:port of a separate plain-HTTP listener serving only GET /metrics; empty: none"),
    FV_CFG_STR_KEY("frontend", "metrics_token_file", &fe_cfg.metrics_token_file, "", FV_CFG_RESTART,
                   "file (mode 0600) with the bearer token /metrics needs; empty: /metrics is not "
                   "served on the API port, and metrics_listen needs no token"),
    /* ---- metrics end ---- */
    /* ---- unverified submissions ---- */
    FV_CFG_INT_KEY("frontend", "unverified_max_per_user", &fe_cfg.unverified_max_per_user, "100", 0,
                   INT_MAX, FV_CFG_RESTART,
                   "submissions one user may have accepted unverified (PostgreSQL down) per "
                   "unverified_window_s; more: 429; 0: none at all"),
    FV_CFG_INT_KEY("frontend", "unverified_max_bytes_per_user", &fe_cfg.unverified_max_bytes_per_user,
                   "10485760", 0, INT_MAX, FV_CFG_RESTART,
                   "bytes of answers one user may have accepted unverified per unverified_window_s"),
    FV_CFG_INT_KEY("frontend", "unverified_window_s", &fe_cfg.unverified_window_s, "3600", 1, 86400,
                   FV_CFG_RESTART, "window (seconds) of the unverified-submission caps"),
    /* ---- unverified submissions end ---- */
    FV_CFG_END,
};

void fe_config_check(fv_cfg_load *ld)
{
    /* Every integer's range is in the table; no key depends on another (password_reserved_threads
     * is taken as at most password_threads - 1 where it is used). */
    fv_common_check(ld);
    if (fe_cfg.public_url[0]) {
        const char *u = fe_cfg.public_url;
        bool bad = strncmp(u, "https://", 8) != 0 || strlen(u) > 200 || strlen(u) == 8 ||
                   u[strlen(u) - 1] == '/' || strchr(u + 8, '/') != NULL;
        for (const char *c = u; *c; c++)
            if ((unsigned char)*c <= ' ' || *c == '"' || *c == '<' || *c == '>' || *c == '&' ||
                *c == '\\' || *c == 0x7f)
                bad = true;
        if (bad)
            fv_config_problem(
                ld, "public_url",
                "'%s' is not an https:// origin (https://host or https://host:port, at most 200 "
                "bytes)",
                u);
    }
    if (fe_cfg.metrics_listen[0]) {
        char addr[64];
        int port;
        if (!fe_metrics_listen_parse(fe_cfg.metrics_listen, addr, sizeof addr, &port))
            fv_config_problem(ld, "metrics_listen", "'%s' is not IP:port or [IPv6]:port",
                              fe_cfg.metrics_listen);
        else if (!fe_cfg.metrics_token_file[0] && strcmp(addr, "127.0.0.1") != 0 &&
                 strcmp(addr, "::1") != 0)
            fv_config_problem(ld, "metrics_listen",
                              "%s is not a loopback address: set metrics_token_file too (plain "
                              "HTTP, otherwise readable by anybody who reaches it)",
                              fe_cfg.metrics_listen);
    }
}
