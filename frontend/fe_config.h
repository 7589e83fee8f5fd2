/* fv-frontend's settings: its configuration table and where the values live. */
#ifndef FE_CONFIG_H
#define FE_CONFIG_H

#include <stdbool.h>

#include "fv_config.h"
#include "fv_keys.h"
#include "fv_settings.h"

typedef struct fe_settings {
    char *listen_addr;
    int listen_port;
    int processes; /* children; 0 = CPU count */
    char *tls_cert;
    char *tls_key;
    char *tls_ocsp_response; /* "" for none */
    int max_body_bytes;
    int pg_pool_size;     /* PostgreSQL connections per child */
    int pg_timeout_ms;    /* a query slower than this fails the request with 503 */
    int redis_timeout_ms; /* an XADD unanswered this long fails the request with 503 */
    int auth_cache_ttl_s;
    int openrosa_basic_cache_ttl_s; /* HTTP Basic credentials checked (fe_openrosa_auth.c) */
    int deployment_cache_ttl_s;
    int cache_stale_s;     /* how long cached entries stand in while PostgreSQL is down */
    int redis_cache_ttl_s; /* life of the lookups shared through Redis */
    int keepalive_timeout_s;
    int shutdown_timeout_s;
    bool access_log;
    char *spool_dir; /* where children spool submissions while Redis is down */
    int spool_max_mb;
    int revocation_poll_ms; /* how often each child reads new revocations */
    /* ---- identity ---- */
    bool signup_open;        /* POST /v1/users open to anyone */
    int password_iterations; /* PBKDF2 iterations of new hashes (>= 600000) */
    int password_threads;    /* work-pool threads per child for password hashing */
    int session_ttl_s;       /* life of a session token */
    int min_password_score;  /* zxcvbn score 0..4 a new password needs */
    int login_max_failures_account;
    int login_max_failures_address;
    int login_window_s;            /* failures counted over this window */
    int password_reserved_threads; /* of password_threads, for FE_WORK_AUTH jobs only */
    int password_queue_auth;       /* logins/password checks waiting per child */
    int password_queue_signup;     /* sign-ups waiting per child */
    int signup_window_s;
    int signup_max_per_address;     /* per child and window; 0 = no limit */
    int signup_max_per_child;       /* per window; 0 = no limit */
    int login_account_delay_after;  /* account failures (all addresses) before logins are delayed */
    int login_account_delay_ms;     /* the first delay, doubled per further failure */
    int login_account_delay_max_ms; /* the cap */
    int session_rate_limit;         /* requests per user per window with sessions; 0 = off */
    int session_rate_window_s;
    /* ---- identity end ---- */
    /* ---- api keys ---- */
    int api_key_rate_limit;       /* requests per key per window; 0 = no limit */
    int api_key_rate_window_s;    /* length of the fixed rate-limit window */
    int api_key_suspend_after;    /* strikes (windows refused within an hour) that suspend a key */
    bool api_key_create_with_key; /* an API-key caller may create keys (until sessions land) */
    /* ---- api keys end ---- */
    /* ---- orgs ---- */
    int invitation_ttl_s;               /* an invitation expires this long after it is made */
    int invitation_max_pending_per_org; /* open invitations one org may have at once */
    int invitation_max_per_org_hour;    /* invitations one org may make per hour */
    /* ---- orgs end ---- */
    /* ---- access ---- */
    int submission_claim_ttl_s; /* life of a submission id's claim in Redis (fv:subid:*); 0 = off */
    char *public_url;           /* "https://host[:port]" or "" (fe_openrosa.c) */
    /* OpenRosa submissions (fe_orsubmit.c) */
    int openrosa_max_body_bytes; /* body limit of .../submission (X-OpenRosa-Accept-Content-Length) */
    int openrosa_max_parts;      /* multipart parts of one submission */
    int openrosa_degraded_max_bytes; /* attachment bytes accepted while PostgreSQL is down */
    int openrosa_store_wait_ms;      /* how long a submission waits for the worker before 202 */
    int openrosa_org_quota_mb;       /* attachment MiB one organisation may hold */
    /* ---- access end ---- */
    /* ---- sites ---- */
    /* ---- sites end ---- */
    /* ---- http limits ---- */
    int tls_handshake_timeout_s;     /* accept to the end of the TLS handshake */
    int header_timeout_s;            /* accept (or a request's first byte) to the end of its head */
    int request_timeout_s;           /* a request's start to the end of its body */
    int max_header_bytes;            /* request line + headers */
    int max_headers;                 /* header fields per request */
    int max_connections;             /* per child; clamped below RLIMIT_NOFILE at start-up */
    int max_connections_per_address; /* per child; 0 = no limit */
    /* ---- http limits end ---- */
    /* ---- metrics ---- */
    char *metrics_listen;     /* "" = no separate metrics listener; else IP:port */
    char *metrics_token_file; /* "" = /metrics only on metrics_listen, without a token */
    /* ---- metrics end ---- */
    /* ---- unverified submissions ---- */
    int unverified_max_per_user;       /* per window, all front ends (Redis) and per child */
    int unverified_max_bytes_per_user; /* bytes of data, likewise */
    int unverified_window_s;
    /* ---- unverified submissions end ---- */
} fe_settings;

extern fe_settings fe_cfg;
/* The master keys (fv_keys.h): loaded by the master from key_file, inherited by the children. */
extern fv_keyset fe_keys;
extern const fv_cfg_entry fe_config_table[];

/* Checks what the table's ranges cannot; reports on the key at fault. The files (certificate,
 * key file) are checked by main.c, which links the code that reads them. */
void fe_config_check(fv_cfg_load *ld);

#endif
