-- 025 (issue 12, envelope encryption at rest; DESIGN.md section 3, docs/security.md "Envelope
-- encryption"): the data keys. One AES-256 key per scope and version, the scope 'org:<uuid>' for
-- an organisation's data and 'global' for users' own data. Only wrapped: `wrapped` is the key
-- sealed by the master key of the key file (common/fv_datakey.c: AES-256-GCM under the master
-- key's subkey "fv-wrap-datakey", associated data "fv-datakey:<scope>:<version>"), text
-- "s1.<master key id>.<base64url>", so a database, a dump or a backup holds no key that opens
-- anything without the key file, and a wrapped key copied to another scope or version does not
-- open. Values are sealed under the highest version of their scope; older versions stay until
-- nothing is sealed under them (fvctl rotate-data-key). `fvctl rotate-master-key` re-wraps
-- every row under the key file's current master key (compare-and-set on `wrapped`).
-- A program creates version 1 of a scope the first time it seals a value of it (INSERT ... ON
-- CONFLICT DO NOTHING, then reads the row that won: two programs never use two keys).
CREATE TABLE data_keys (
    scope      text NOT NULL CHECK (scope = 'global' OR scope ~ '^org:[0-9a-f-]{36}$'),
    version    integer NOT NULL CHECK (version >= 1),
    wrapped    text NOT NULL CHECK (wrapped LIKE 's1.%'),
    created_at timestamptz NOT NULL DEFAULT now(),
    rewrapped_at timestamptz,
    PRIMARY KEY (scope, version)
);

-- The data key version a sealed value names ("FVD1" | version u32 big-endian | ...), NULL for
-- anything else (a value stored before 026, in clear).
CREATE FUNCTION fv_dk_version(v bytea) RETURNS integer
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT CASE WHEN length(v) >= 36 AND substr(v, 1, 4) = '\x46564431'::bytea
                THEN (get_byte(v, 4) << 24) | (get_byte(v, 5) << 16) | (get_byte(v, 6) << 8) | get_byte(v, 7)
           END
$$;
