-- 019: exports withdrawn when a purge or an erasure makes what they hold out of date (issue 11).
-- An export's zip (export_chunks, migration 015) is a copy of the org's data inside PostgreSQL:
-- after a purge it would still hold the purged answers, after an erasure the erased person's name
-- and email (members.jsonl, audit.jsonl), and a zip cannot be rewritten in place. So the acts
-- themselves withdraw them, in their own transaction: every export of the org being built or
-- ready loses its bytes and its row becomes 'withdrawn' (downloads answer 410
-- export_withdrawn), with an 'export.withdrawn' audit entry naming why. They run from the audit
-- entries that record those acts (a trigger, so whichever code writes the act withdraws):
--   survey.purge            the purge request: the org's exports at once
--   job.done / job.failed   of a purge job: the exports built while the purge ran (they may hold
--                           answers the job had not reached yet)
--   user.erase              the erasure: the exports of every org the person is or was in, or
--                           whose audit log names their email
-- An export being built when it is withdrawn cannot become ready: export_chunks takes chunks only
-- for an export in state 'building' (the row locked FOR SHARE, so a withdrawal waits for a step
-- that is writing one, then deletes its chunks; a step that comes after fails), and the worker's
-- ready statement needs 'building' too. docs/security.md, "Export".

ALTER TABLE exports DROP CONSTRAINT exports_state_check;
ALTER TABLE exports ADD CONSTRAINT exports_state_check
    CHECK (state IN ('building', 'ready', 'failed', 'expired', 'withdrawn'));

-- Withdraws the exports of org (building or ready): their rows 'withdrawn', their bytes deleted,
-- an 'export.withdrawn' entry each (actor: who did what made them out of date; detail: why).
-- Returns how many. Separate statements: the DELETE sees chunks a step committed while the
-- UPDATE waited for its lock.
CREATE FUNCTION fv_exports_withdraw(org uuid, actor uuid, detail jsonb) RETURNS integer
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    n integer;
    ids uuid[];
BEGIN
    WITH x AS (UPDATE exports e SET state = 'withdrawn'
               WHERE e.org_id = org AND e.state IN ('building', 'ready') RETURNING e.id)
    SELECT array_agg(x.id) INTO ids FROM x;
    n := COALESCE(array_length(ids, 1), 0);
    IF n = 0 THEN
        RETURN 0;
    END IF;
    DELETE FROM export_chunks c WHERE c.export_id = ANY (ids);
    INSERT INTO audit (actor, action, target_type, target_id, org_id, detail)
    SELECT fv_exports_withdraw.actor, 'export.withdrawn', 'export', i::text, org, fv_exports_withdraw.detail
    FROM unnest(ids) i;
    RETURN n;
END $$;

CREATE FUNCTION fv_audit_withdraws_exports() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    me users;
    o uuid;
BEGIN
    IF NEW.action = 'user.erase' THEN
        -- in fv_erase_account, before the memberships, the audit details and the account change
        SELECT * INTO me FROM users x WHERE x.id = NEW.actor;
        FOR o IN SELECT DISTINCT e.org_id FROM exports e
                 WHERE e.state IN ('building', 'ready')
                   AND (fv_user_ever_in_org(NEW.actor, e.org_id)
                        OR EXISTS (SELECT 1 FROM audit a WHERE a.org_id = e.org_id
                                   AND fv_json_strings(a.detail) && ARRAY[lower(me.email)])) LOOP
            PERFORM fv_exports_withdraw(o, NEW.actor, jsonb_build_object('reason', 'erasure',
                                                                       'pseudonym', NEW.detail->'pseudonym'));
        END LOOP;
    ELSIF NEW.org_id IS NOT NULL THEN
        -- survey.purge, or the end of a purge job (the trigger's WHEN)
        PERFORM fv_exports_withdraw(NEW.org_id, NEW.actor, jsonb_build_object(
            'reason', 'purge', 'job_id', COALESCE(NEW.detail->>'job_id', NEW.target_id)));
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER audit_withdraws_exports AFTER INSERT ON audit FOR EACH ROW
    WHEN (NEW.action IN ('survey.purge', 'user.erase')
          OR (NEW.action IN ('job.done', 'job.failed') AND NEW.detail->>'kind' = 'purge'))
    EXECUTE FUNCTION fv_audit_withdraws_exports();

-- Chunks only for an export being built (see above).
CREATE FUNCTION fv_export_chunk_building() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM exports e WHERE e.id = NEW.export_id AND e.state = 'building' FOR SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'export %: chunks are written only while it is being built (it was withdrawn?)',
            NEW.export_id USING ERRCODE = 'FV410';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER export_chunks_building_only BEFORE INSERT ON export_chunks FOR EACH ROW
    EXECUTE FUNCTION fv_export_chunk_building();

-- Downloads: 410 export_withdrawn for a withdrawn one (migration 015's verdict otherwise).
CREATE OR REPLACE FUNCTION fv_export_download_verdict(u uuid, e exports, mfa boolean) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN e.id IS NULL OR u IS NULL THEN 'hidden'
                WHEN v.verdict <> 'ok' THEN v.verdict
                WHEN e.state = 'withdrawn' THEN 'export_withdrawn'
                WHEN e.state = 'expired' OR (e.state = 'ready' AND e.expires_at <= now()) THEN 'export_expired'
                WHEN e.state <> 'ready' THEN 'export_not_ready'
                ELSE 'ok' END
    FROM (SELECT CASE WHEN e.id IS NULL OR u IS NULL THEN 'hidden'
                      ELSE fv_org_admin_verdict(u, e.org_id, mfa) END AS verdict) v
$$;
