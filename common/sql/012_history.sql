-- 012: history (issue 11, DESIGN section 3). Every change to a response or a site appends a version
-- row holding the FULL state after the change (the whole table row as jsonb: status, stage, data,
-- location, rejection message, deleted_at, timestamps, version, ...), with its actor, time,
-- operation and version number. The history tables are the two that exist already, extended:
--   response_events (004): one row per response version; `state` added
--   site_versions (005):   one row per site version; `state` now holds the whole row too
-- In the database itself:
--   * a statement trigger on responses and sites refuses a statement that inserted or changed a
--     row without the version row of its new version, written by the same statement, and for a
--     change one that holds exactly its new state (so a change cannot skip its history, nor record
--     a state other than the one written);
--   * the history rows are append-only: a trigger refuses DELETE and TRUNCATE always, and UPDATE
--     except of their content (state, data, location, message) inside a transaction that opened
--     an audited purge with fv_history_purge_begin (docs/security.md, "History").
-- Who may read a history or restore a deleted object is decided by the verdict functions below,
-- which call the reading and managing rules (fv_can_read_response, fv_is_deployment_manager,
-- fv_response_manager_verdict, fv_site_visible, fv_site_change_verdict) rather than copy them.

-- ---- the history tables ----

ALTER TABLE response_events ADD COLUMN state jsonb;
ALTER TABLE response_events DROP CONSTRAINT response_events_action_check;
-- backfill: the state of a response found by this migration with no version row for its current
-- version (made before migration 004); actor unknown.
ALTER TABLE response_events ADD CONSTRAINT response_events_action_check CHECK (action IN (
    'submit', 'approve', 'reject', 'resubmit', 'edit', 'delete', 'restore', 'revert', 'purge',
    'backfill'));
ALTER TABLE response_events ALTER COLUMN actor DROP NOT NULL;
ALTER TABLE response_events ADD CONSTRAINT response_events_actor_known
    CHECK (actor IS NOT NULL OR action = 'backfill');

ALTER TABLE site_versions DROP CONSTRAINT site_versions_operation_check;
ALTER TABLE site_versions ADD CONSTRAINT site_versions_operation_check CHECK (operation IN (
    'create', 'update', 'delete', 'restore', 'revert', 'purge', 'backfill'));
ALTER TABLE site_versions ALTER COLUMN actor DROP NOT NULL;
ALTER TABLE site_versions ADD CONSTRAINT site_versions_actor_known
    CHECK (actor IS NOT NULL OR operation = 'backfill');

-- ---- backfill: the full state of every version written before this migration ----
-- response_events kept the answers only after submit, resubmit and edit. Each response's events
-- are replayed in version order from its constant columns (id, survey, deployment, submitter,
-- collected_at, received_at, created_at): status from the event, stage from the event (the stage
-- after; for approve the next stage or 0 when final), rejection_message from reject events (cleared
-- by approve and resubmit), deleted_at from the delete event's time, updated_at = the event's time
-- (the changes set both to now() in one transaction). The version that is current gets the row as
-- it stands, exactly. Gap (docs/security.md): survey_version of an older version of a response that
-- was edited or resubmitted since is the current one (the events did not record it).
DO $$
DECLARE
    e record;
    cur jsonb;
    row_now responses;
BEGIN
    FOR e IN SELECT * FROM response_events ORDER BY response_id, version LOOP
        IF row_now.id IS DISTINCT FROM e.response_id THEN
            SELECT * INTO row_now FROM responses WHERE id = e.response_id;
            cur := to_jsonb(row_now) || jsonb_build_object('deleted_at', NULL, 'rejection_message', NULL);
        END IF;
        cur := cur || jsonb_build_object('version', e.version, 'status', e.status, 'updated_at', e.at,
                                         'stage', e.stage);
        IF e.action IN ('submit', 'resubmit', 'edit') THEN
            cur := cur || jsonb_build_object('data', COALESCE(e.data, cur->'data'),
                                             'location', CASE WHEN e.data IS NULL THEN cur->'location'
                                                              ELSE COALESCE(e.location, 'null') END);
        END IF;
        IF e.action IN ('submit', 'resubmit', 'approve') THEN
            cur := cur || jsonb_build_object('rejection_message', NULL);
        END IF;
        IF e.action = 'approve' THEN
            cur := cur || jsonb_build_object('stage', CASE WHEN e.status = 'final' THEN 0 ELSE e.stage + 1 END);
        ELSIF e.action = 'reject' THEN
            cur := cur || jsonb_build_object('rejection_message', e.message);
        ELSIF e.action = 'delete' THEN
            cur := cur || jsonb_build_object('deleted_at', e.at);
        END IF;
        IF e.version = row_now.version THEN
            cur := to_jsonb(row_now);
        END IF;
        UPDATE response_events SET state = cur WHERE id = e.id;
    END LOOP;
END $$;

INSERT INTO response_events (response_id, version, action, stage, status, actor, at, state)
SELECT r.id, r.version, CASE WHEN r.version = 1 THEN 'submit' ELSE 'backfill' END, r.stage, r.status,
       CASE WHEN r.version = 1 THEN r.submitted_by END, r.updated_at, to_jsonb(r)
FROM responses r
WHERE NOT EXISTS (SELECT 1 FROM response_events e WHERE e.response_id = r.id AND e.version = r.version);

-- Versions of which the event was lost (should be none): the state of the row as it stands.
UPDATE response_events e SET state = to_jsonb(r) FROM responses r
WHERE e.state IS NULL AND r.id = e.response_id;
ALTER TABLE response_events ALTER COLUMN state SET NOT NULL;

-- site_versions held the site as the API showed it (fv_site_json, without deleted_at): each one
-- becomes the whole row, deleted_at being the time of the delete version; the current version is
-- the row as it stands.
UPDATE site_versions v
SET state = CASE WHEN v.version = s.version THEN to_jsonb(s)
                 ELSE to_jsonb(jsonb_populate_record(s, v.state))
                      || jsonb_build_object('deleted_at', CASE WHEN v.operation = 'delete' THEN v.at END)
            END
FROM sites s WHERE s.id = v.site_id;

INSERT INTO site_versions (site_id, version, operation, actor, at, state)
SELECT s.id, s.version, CASE WHEN s.version = 1 THEN 'create' ELSE 'backfill' END,
       CASE WHEN s.version = 1 THEN s.created_by END, s.updated_at, to_jsonb(s)
FROM sites s
WHERE NOT EXISTS (SELECT 1 FROM site_versions v WHERE v.site_id = s.id AND v.version = s.version);

-- ---- every change has its version (checked at the end of the statement) ----
-- One set-based check per statement (transition tables), run after the whole statement, the
-- data-modifying CTEs that write the history rows included: every row it updated must have the
-- history row of its new version holding exactly its new state; every row it inserted, the history
-- row of its version (the state itself is not compared on insert: building and comparing the
-- whole row's jsonb cost the worker's batch insert about 20 % more CPU per row, measured; the one
-- writer of inserts, the worker, takes the state from the row it inserted, in the same statement).

CREATE FUNCTION fv_response_history_written() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    bad record;
BEGIN
    SELECT n.id, n.version INTO bad FROM fv_new_rows n
    WHERE NOT EXISTS (SELECT 1 FROM response_events e
                      WHERE e.response_id = n.id AND e.version = n.version AND (TG_OP = 'INSERT' OR e.state = to_jsonb(n)))
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'response % version %: changed without its history row (response_events)',
            bad.id, bad.version USING ERRCODE = 'FV500';
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER responses_history_on_insert AFTER INSERT ON responses
    REFERENCING NEW TABLE AS fv_new_rows FOR EACH STATEMENT EXECUTE FUNCTION fv_response_history_written();
CREATE TRIGGER responses_history_on_update AFTER UPDATE ON responses
    REFERENCING NEW TABLE AS fv_new_rows FOR EACH STATEMENT EXECUTE FUNCTION fv_response_history_written();

CREATE FUNCTION fv_site_history_written() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    bad record;
BEGIN
    SELECT n.id, n.version INTO bad FROM fv_new_rows n
    WHERE NOT EXISTS (SELECT 1 FROM site_versions v
                      WHERE v.site_id = n.id AND v.version = n.version AND (TG_OP = 'INSERT' OR v.state = to_jsonb(n)))
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'site % version %: changed without its history row (site_versions)',
            bad.id, bad.version USING ERRCODE = 'FV500';
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER sites_history_on_insert AFTER INSERT ON sites
    REFERENCING NEW TABLE AS fv_new_rows FOR EACH STATEMENT EXECUTE FUNCTION fv_site_history_written();
CREATE TRIGGER sites_history_on_update AFTER UPDATE ON sites
    REFERENCING NEW TABLE AS fv_new_rows FOR EACH STATEMENT EXECUTE FUNCTION fv_site_history_written();

-- ---- append-only, except one audited purge ----

-- Audit entries of purges are found by their transaction id.
CREATE INDEX audit_history_purge ON audit ((detail->>'txid')) WHERE action = 'history.purge';

-- True when the current transaction opened a purge with fv_history_purge_begin: the setting it
-- sets names this transaction, and the audit entry it wrote for this transaction exists.
CREATE FUNCTION fv_history_purge_active() RETURNS boolean
LANGUAGE sql VOLATILE AS $$
    SELECT COALESCE(current_setting('fieldvault.history_purge', true), '') = txid_current()::text
       AND EXISTS (SELECT 1 FROM audit a
                   WHERE a.action = 'history.purge' AND a.detail->>'txid' = txid_current()::text)
$$;

-- THE one way to change history rows (reserved for the pseudonymisation purge, issue 11): writes
-- the audit entry 'history.purge' (actor, org, target, detail plus this transaction's id) and lets
-- the rest of this transaction (only) UPDATE the content of history rows (state, data, location,
-- message), never their identity (object, version, operation, actor, time); DELETE and TRUNCATE
-- stay refused. Returns the audit entry's id. The caller names what is purged in detail.
CREATE FUNCTION fv_history_purge_begin(actor uuid, org uuid, target_type text, target_id text,
                                       detail jsonb) RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    entry bigint;
BEGIN
    IF actor IS NULL OR org IS NULL THEN
        RAISE EXCEPTION 'a history purge needs an actor and an organisation';
    END IF;
    INSERT INTO audit (actor, action, target_type, target_id, org_id, detail)
    VALUES (actor, 'history.purge', target_type, target_id, org,
            COALESCE(detail, '{}'::jsonb) || jsonb_build_object('txid', txid_current()::text))
    RETURNING id INTO entry;
    PERFORM set_config('fieldvault.history_purge', txid_current()::text, true);
    RETURN entry;
END $$;

CREATE FUNCTION fv_history_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF fv_history_purge_active()
           AND to_jsonb(NEW) - ARRAY['state', 'data', 'location', 'message']
               = to_jsonb(OLD) - ARRAY['state', 'data', 'location', 'message'] THEN
            RETURN NEW;
        END IF;
    END IF;
    RAISE EXCEPTION '% is append-only (history: % refused)', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'FV403';
END $$;
CREATE TRIGGER response_events_append_only BEFORE UPDATE OR DELETE ON response_events
    FOR EACH ROW EXECUTE FUNCTION fv_history_append_only();
CREATE TRIGGER response_events_no_truncate BEFORE TRUNCATE ON response_events
    FOR EACH STATEMENT EXECUTE FUNCTION fv_history_append_only();
CREATE TRIGGER site_versions_append_only BEFORE UPDATE OR DELETE ON site_versions
    FOR EACH ROW EXECUTE FUNCTION fv_history_append_only();
CREATE TRIGGER site_versions_no_truncate BEFORE TRUNCATE ON site_versions
    FOR EACH STATEMENT EXECUTE FUNCTION fv_history_append_only();

-- ---- verdicts: reading a history, restoring ----

-- Reading response resp's history: whoever may read the response (fv_can_read_response); a
-- soft-deleted one's: its managers (fv_is_deployment_manager, as reads count it), who may restore it.
CREATE FUNCTION fv_response_history_verdict(u uuid, resp uuid) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN x.id IS NULL THEN 'hidden'
                WHEN x.deleted_at IS NULL AND fv_can_read_response(u, x.id) THEN 'ok'
                WHEN x.deleted_at IS NOT NULL AND fv_is_deployment_manager(u, x.deployment_id) THEN 'ok'
                ELSE 'hidden' END
    FROM (SELECT 1) one LEFT JOIN responses x ON x.id = resp
$$;

-- Restoring response x: those who may delete it (fv_response_manager_verdict of x as it was before
-- the delete). 'not_deleted' (409) for them when it is not deleted; a deleted response is 'hidden'
-- from everybody else.
CREATE FUNCTION fv_response_restore_verdict(u uuid, x responses, mfa boolean) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN x.id IS NULL THEN 'hidden'
                WHEN x.deleted_at IS NULL THEN CASE WHEN v.verdict = 'ok' THEN 'not_deleted' ELSE v.verdict END
                WHEN v.verdict IN ('ok', 'totp_required') THEN v.verdict
                ELSE 'hidden' END
    FROM (SELECT fv_response_manager_verdict(u, jsonb_populate_record(x, '{"deleted_at": null}'::jsonb),
                                             mfa) AS verdict) v
$$;

-- Reading site s's history: whoever may see the site (fv_site_visible); a soft-deleted one's: those
-- who may change (and so restore) it.
CREATE FUNCTION fv_site_history_verdict(u uuid, s sites) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN s.id IS NULL THEN 'hidden'
                WHEN s.deleted_at IS NULL AND COALESCE(fv_site_visible(u, s.org_id, s.privacy), false) THEN 'ok'
                WHEN s.deleted_at IS NOT NULL AND fv_site_change_verdict(u, s.org_id, s.privacy) = 'ok' THEN 'ok'
                ELSE 'hidden' END
$$;

-- Restoring site s: those who may change it; 'not_deleted' for them when it is not deleted.
CREATE FUNCTION fv_site_restore_verdict(u uuid, s sites) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN s.id IS NULL THEN 'hidden'
                WHEN s.deleted_at IS NULL THEN CASE WHEN v.verdict = 'ok' THEN 'not_deleted' ELSE v.verdict END
                WHEN v.verdict = 'ok' THEN 'ok'
                ELSE 'hidden' END
    FROM (SELECT fv_site_change_verdict(u, s.org_id, s.privacy) AS verdict) v
$$;

-- One version of a response's history as the API shows it; admin: the reader sees confidential
-- answers (as fv_response_json, applied to the state of that version, so an item's "state" is
-- what GET /v1/responses/{id} answered then).
CREATE FUNCTION fv_response_version_json(e response_events, admin boolean) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('version', e.version, 'operation', e.action, 'actor', e.actor,
                              'at', fv_ts(e.at), 'override', e.override, 'message', e.message,
                              'deleted', e.state->>'deleted_at' IS NOT NULL,
                              'state', fv_response_json(jsonb_populate_record(NULL::responses, e.state), admin))
$$;

-- One version of site s's history as the API shows it to u: the state as fv_site_json showed it
-- then, never more than u may see of the site now nor than u could see then (all of it only when
-- both allow; null when u could not see that version at all, e.g. while the site was private).
CREATE FUNCTION fv_site_version_json(v site_versions, s sites, u uuid) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('version', v.version, 'operation', v.operation, 'actor', v.actor,
                              'at', fv_ts(v.at),
                              'deleted', v.state->>'deleted_at' IS NOT NULL,
                              'state', CASE WHEN COALESCE(fv_site_visible(u, s.org_id, old.privacy), false)
                                            THEN fv_site_json(old, COALESCE(fv_site_full(u, s.org_id, s.privacy)
                                                                            AND fv_site_full(u, s.org_id, old.privacy),
                                                                            false)) END)
    FROM jsonb_populate_record(NULL::sites, v.state) old
$$;
