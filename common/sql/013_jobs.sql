-- 013: jobs (issue 11). Long work the workers run beside the submission stream: revert of a
-- compromised account, purge of questions, the organisation export (migration 015). A job is one
-- row; the API creates it 'queued'; a worker claims it (FOR UPDATE SKIP LOCKED) and holds a lease
-- on it (lease_owner, lease_expires) which every step renews; a job whose lease expired (its
-- worker died) is claimed again by another worker. Every step runs in one transaction that first
-- renews the lease only if this worker's claim is still the current one (lease_owner and attempts:
-- the fence), does a bounded piece of the kind's work, and records how far it got (checkpoint,
-- progress, result) in the job row, so a step's effects and its checkpoint commit together or not
-- at all: a job taken over after a crash goes on from the last committed step and does nothing
-- twice (docs/security.md, "Jobs"). The worker side is worker/wk_jobs.c.

CREATE TABLE jobs (
    id            uuid PRIMARY KEY,
    org_id        uuid NOT NULL REFERENCES orgs(id),
    kind          text NOT NULL CHECK (kind ~ '^[a-z][a-z0-9_]{0,31}$'),
    params        jsonb NOT NULL DEFAULT '{}',
    state         text NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'running', 'done', 'failed')),
    -- counts shown by GET /v1/jobs/{id} (each kind names its own: total, done, conflicts, ...)
    progress      jsonb NOT NULL DEFAULT '{}',
    -- the kind's private cursor: where its next step starts
    checkpoint    jsonb NOT NULL DEFAULT '{}',
    -- {"conflicts": [...], "errors": [...]} (each list bounded by its kind; the counts are in progress)
    result        jsonb NOT NULL DEFAULT '{"conflicts": [], "errors": []}',
    created_by    uuid NOT NULL REFERENCES users(id),
    created_at    timestamptz NOT NULL DEFAULT now(),
    started_at    timestamptz,
    finished_at   timestamptz,
    lease_owner   text,
    lease_expires timestamptz,
    attempts      integer NOT NULL DEFAULT 0, -- claims so far (a takeover after a crash is one more)
    CHECK ((state IN ('done', 'failed')) = (finished_at IS NOT NULL))
);
-- The claim's scan: jobs waiting or running (a running one is claimable once its lease expired).
CREATE INDEX jobs_open ON jobs (created_at) WHERE state IN ('queued', 'running');
CREATE INDEX jobs_org ON jobs (org_id, created_at);

-- GET /v1/jobs/{id}: the org's admins (with the TOTP session the org requires of its admins) and
-- the job's creator while a member of the org (migration 009: rights need current membership).
CREATE FUNCTION fv_job_read_verdict(u uuid, j jobs, mfa boolean) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN j.id IS NULL OR u IS NULL THEN 'hidden'
                WHEN v.verdict = 'ok' THEN 'ok'
                WHEN j.created_by = u AND fv_is_org_member(u, j.org_id) THEN 'ok'
                WHEN v.verdict = 'totp_required' THEN 'totp_required'
                ELSE 'hidden' END
    FROM (SELECT fv_org_admin_verdict(u, j.org_id, mfa) AS verdict) v
$$;

CREATE FUNCTION fv_job_json(j jobs) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('id', j.id, 'org_id', j.org_id, 'kind', j.kind, 'state', j.state,
                              'params', j.params, 'progress', j.progress,
                              'conflicts', COALESCE(j.result->'conflicts', '[]'::jsonb),
                              'errors', COALESCE(j.result->'errors', '[]'::jsonb),
                              'created_by', j.created_by, 'created_at', fv_ts(j.created_at),
                              'started_at', fv_ts(j.started_at), 'finished_at', fv_ts(j.finished_at),
                              'attempts', j.attempts)
$$;

-- Ends job id (state done or failed) with its audit entry ('job.done' / 'job.failed', actor the
-- creator, the kind and the progress counts in detail); error (may be NULL) is appended to its
-- errors. Called by the worker in the transaction of the job's last step.
CREATE FUNCTION fv_job_finish(id uuid, final_state text, error text) RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    j jobs;
BEGIN
    UPDATE jobs x SET state = final_state, finished_at = now(), lease_owner = NULL, lease_expires = NULL,
                      result = CASE WHEN error IS NULL THEN x.result
                                    ELSE jsonb_set(x.result, '{errors}',
                                                   COALESCE(x.result->'errors', '[]'::jsonb)
                                                   || jsonb_build_array(jsonb_build_object('error', error))) END
    WHERE x.id = fv_job_finish.id AND x.state IN ('queued', 'running')
    RETURNING * INTO j;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    INSERT INTO audit (actor, action, target_type, target_id, org_id, detail)
    VALUES (j.created_by, 'job.' || final_state, 'job', j.id::text, j.org_id,
            jsonb_build_object('kind', j.kind, 'progress', j.progress, 'attempts', j.attempts,
                               'errors', jsonb_array_length(COALESCE(j.result->'errors', '[]'::jsonb)))
            || CASE WHEN error IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('error', error) END);
END $$;

-- ---- revert of a compromised account (kind 'revert') ----
-- POST /v1/orgs/{org}/revert {user_id, since, until, force} makes a job with params {user_id, since,
-- until, force} (until no later than the request's time, so the window's versions are fixed).
-- Each object (response or site of the org) of which the user made a version in [since, until)
-- goes back to the state of the version just before the user's first one in the window, as a new
-- version 'revert' by the job's creator; an object the user created in the window is deleted
-- (soft). An object with a version after that first one not made by the user in the window (an
-- other's change, or the user's own outside it) is a conflict: listed, left alone, unless force.

CREATE INDEX response_events_actor ON response_events (actor, at);
CREATE INDEX site_versions_actor ON site_versions (actor, at);

-- Whether u is or ever was in org: a member now, or named by a membership change, an invitation's
-- acceptance or any other audit entry of the org, or the author of a version of its objects.
CREATE FUNCTION fv_user_ever_in_org(u uuid, org uuid) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT fv_is_org_member(u, org)
        OR EXISTS (SELECT 1 FROM audit a WHERE a.org_id = org
                   AND (a.actor = u OR (a.target_type = 'user' AND a.target_id = u::text)))
        OR EXISTS (SELECT 1 FROM response_events e JOIN responses r ON r.id = e.response_id
                   JOIN surveys s ON s.id = r.survey_id WHERE e.actor = u AND s.org_id = org)
        OR EXISTS (SELECT 1 FROM site_versions v JOIN sites s ON s.id = v.site_id
                   WHERE v.actor = u AND s.org_id = org)
$$;

-- The columns of table t but id, as a list for SET (...) = (SELECT ...): the revert writes the
-- whole row from a version's state, whatever columns later migrations add.
CREATE FUNCTION fv_revert_columns(t regclass) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute
    WHERE attrelid = t AND attnum > 0 AND NOT attisdropped AND attgenerated = '' AND attname <> 'id'
$$;

-- Reverts one object (kind 'response' or 'site', id obj) for job j (params u, since, until, force;
-- the new version's actor admin). Returns {"outcome": "reverted" | "unchanged" | "conflict" |
-- "gone", ...}: "conflict" with the other versions' actors and numbers.
CREATE FUNCTION fv_revert_object(kind text, obj uuid, u uuid, since timestamptz, until timestamptz,
                                 force boolean, admin uuid) RETURNS jsonb
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    tbl regclass := CASE kind WHEN 'response' THEN 'responses'::regclass ELSE 'sites'::regclass END;
    hist text := CASE kind WHEN 'response' THEN 'response_events' ELSE 'site_versions' END;
    key text := CASE kind WHEN 'response' THEN 'response_id' ELSE 'site_id' END;
    op text := CASE kind WHEN 'response' THEN 'action' ELSE 'operation' END;
    cur jsonb;
    first_v integer;
    others jsonb;
    target jsonb;
    cols text := fv_revert_columns(tbl);
    written jsonb;
BEGIN
    EXECUTE format('SELECT to_jsonb(x) FROM %s x WHERE x.id = $1 FOR UPDATE', tbl) INTO cur USING obj;
    IF cur IS NULL THEN
        RETURN jsonb_build_object('outcome', 'gone');
    END IF;
    EXECUTE format('SELECT min(version) FROM %I WHERE %I = $1 AND actor = $2 AND at >= $3 AND at < $4',
                   hist, key) INTO first_v USING obj, u, since, until;
    IF first_v IS NULL THEN
        RETURN jsonb_build_object('outcome', 'unchanged');
    END IF;
    EXECUTE format('SELECT jsonb_agg(jsonb_build_object(''version'', version, ''operation'', %I, '
                   '''actor'', actor, ''at'', fv_ts(at)) ORDER BY version) FROM %I '
                   'WHERE %I = $1 AND version > $2 AND NOT (actor IS NOT DISTINCT FROM $3 AND at >= $4 AND at < $5)',
                   op, hist, key) INTO others USING obj, first_v, u, since, until;
    IF others IS NOT NULL AND NOT force THEN
        RETURN jsonb_build_object('outcome', 'conflict', 'type', kind, 'id', obj,
                                  'first_version', first_v, 'later_versions', others);
    END IF;
    IF first_v = 1 THEN
        -- created by the user in the window: deleted
        IF cur->>'deleted_at' IS NOT NULL THEN
            RETURN jsonb_build_object('outcome', 'unchanged');
        END IF;
        target := cur || jsonb_build_object('deleted_at', now());
    ELSE
        EXECUTE format('SELECT state FROM %I WHERE %I = $1 AND version = $2', hist, key)
            INTO target USING obj, first_v - 1;
        IF target - ARRAY['version', 'updated_at'] = cur - ARRAY['version', 'updated_at'] THEN
            RETURN jsonb_build_object('outcome', 'unchanged');
        END IF;
    END IF;
    target := target || jsonb_build_object('id', obj, 'version', (cur->>'version')::int + 1,
                                           'updated_at', now());
    -- One statement: the row and its version (the history trigger checks they agree).
    IF kind = 'response' THEN
        EXECUTE format('WITH n AS (SELECT * FROM jsonb_populate_record(NULL::responses, $1)), '
                       '     w AS (UPDATE responses x SET (%s) = (SELECT %s FROM n) WHERE x.id = $2 RETURNING x.*), '
                       '     e AS (INSERT INTO response_events (response_id, version, action, stage, status, actor, state) '
                       '           SELECT w.id, w.version, ''revert'', w.stage, w.status, $3, to_jsonb(w) FROM w) '
                       'SELECT to_jsonb(w) FROM w', cols, cols)
            INTO written USING target, obj, admin;
    ELSE
        EXECUTE format('WITH n AS (SELECT * FROM jsonb_populate_record(NULL::sites, $1)), '
                       '     w AS (UPDATE sites x SET (%s) = (SELECT %s FROM n) WHERE x.id = $2 RETURNING x.*), '
                       '     e AS (INSERT INTO site_versions (site_id, version, operation, actor, state) '
                       '           SELECT w.id, w.version, ''revert'', $3, to_jsonb(w) FROM w) '
                       'SELECT to_jsonb(w) FROM w', cols, cols)
            INTO written USING target, obj, admin;
    END IF;
    RETURN jsonb_build_object('outcome', 'reverted', 'version', written->'version',
                              'forced', others IS NOT NULL);
END $$;

-- At most this many conflicts and errors are listed in a job's result (the counts are exact).
CREATE FUNCTION fv_job_list_max() RETURNS integer LANGUAGE sql IMMUTABLE AS $$ SELECT 1000 $$;

-- One step of revert job id: at most lim objects, responses first then sites, in id order after
-- the checkpoint's cursor; the first step counts them. Each object in a subtransaction: one that
-- fails is an error of the job (listed), the others go on. Returns 'more', 'done' or
-- 'failed:<why>'. Runs in the worker's fenced step transaction (wk_job_revert.c).
CREATE FUNCTION fv_job_revert_step(id uuid, lim integer) RETURNS text
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    j jobs;
    u uuid;
    since timestamptz;
    until timestamptz;
    force boolean;
    phase text;
    after uuid;
    obj uuid;
    n integer := 0;
    res jsonb;
    prog jsonb;
    lists jsonb;
    outcome text;
BEGIN
    SELECT * INTO j FROM jobs x WHERE x.id = fv_job_revert_step.id;
    u := (j.params->>'user_id')::uuid;
    since := (j.params->>'since')::timestamptz;
    until := (j.params->>'until')::timestamptz;
    force := COALESCE((j.params->>'force')::boolean, false);
    -- The admin who asked must still be one (rights need current membership, migration 009).
    IF NOT fv_is_org_admin(j.created_by, j.org_id) THEN
        RETURN 'failed:the admin who asked for the revert is no longer an admin of the organisation';
    END IF;
    phase := COALESCE(j.checkpoint->>'phase', 'count');
    after := (j.checkpoint->>'after')::uuid;
    prog := j.progress;
    lists := j.result;
    IF phase = 'count' THEN
        prog := jsonb_build_object(
            'total', (SELECT count(DISTINCT e.response_id) FROM response_events e
                      JOIN responses r ON r.id = e.response_id JOIN surveys s ON s.id = r.survey_id
                      WHERE e.actor = u AND e.at >= since AND e.at < until AND s.org_id = j.org_id)
                   + (SELECT count(DISTINCT v.site_id) FROM site_versions v JOIN sites s ON s.id = v.site_id
                      WHERE v.actor = u AND v.at >= since AND v.at < until AND s.org_id = j.org_id),
            'done', 0, 'reverted', 0, 'unchanged', 0, 'conflicts', 0, 'forced', 0, 'errors', 0);
        UPDATE jobs x SET progress = prog, checkpoint = '{"phase": "responses"}' WHERE x.id = j.id;
        RETURN 'more';
    END IF;
    FOR obj IN
        SELECT DISTINCT e.response_id FROM response_events e
        JOIN responses r ON r.id = e.response_id JOIN surveys s ON s.id = r.survey_id
        WHERE phase = 'responses' AND e.actor = u AND e.at >= since AND e.at < until
          AND s.org_id = j.org_id AND (after IS NULL OR e.response_id > after)
        UNION
        SELECT DISTINCT v.site_id FROM site_versions v JOIN sites s ON s.id = v.site_id
        WHERE phase = 'sites' AND v.actor = u AND v.at >= since AND v.at < until
          AND s.org_id = j.org_id AND (after IS NULL OR v.site_id > after)
        ORDER BY 1 LIMIT lim
    LOOP
        BEGIN
            res := fv_revert_object(CASE phase WHEN 'responses' THEN 'response' ELSE 'site' END, obj,
                                    u, since, until, force, j.created_by);
        EXCEPTION WHEN OTHERS THEN
            res := jsonb_build_object('outcome', 'error', 'error', SQLERRM);
        END;
        outcome := res->>'outcome';
        prog := prog || jsonb_build_object('done', (prog->>'done')::int + 1);
        IF outcome = 'reverted' THEN
            prog := prog || jsonb_build_object('reverted', (prog->>'reverted')::int + 1);
            IF (res->>'forced')::boolean THEN
                prog := prog || jsonb_build_object('forced', (prog->>'forced')::int + 1);
            END IF;
        ELSIF outcome = 'conflict' THEN
            prog := prog || jsonb_build_object('conflicts', (prog->>'conflicts')::int + 1);
            IF jsonb_array_length(lists->'conflicts') < fv_job_list_max() THEN
                lists := jsonb_set(lists, '{conflicts}', (lists->'conflicts') || jsonb_build_array(res - 'outcome'));
            END IF;
        ELSIF outcome = 'error' THEN
            prog := prog || jsonb_build_object('errors', (prog->>'errors')::int + 1);
            IF jsonb_array_length(lists->'errors') < fv_job_list_max() THEN
                lists := jsonb_set(lists, '{errors}', (lists->'errors') || jsonb_build_array(
                    jsonb_build_object('type', CASE phase WHEN 'responses' THEN 'response' ELSE 'site' END,
                                       'id', obj, 'error', res->>'error')));
            END IF;
        ELSE
            prog := prog || jsonb_build_object('unchanged', (prog->>'unchanged')::int + 1);
        END IF;
        after := obj;
        n := n + 1;
    END LOOP;
    IF n < lim THEN
        IF phase = 'sites' THEN
            UPDATE jobs x SET progress = prog, result = lists, checkpoint = '{"phase": "end"}'
            WHERE x.id = j.id;
            RETURN 'done';
        END IF;
        phase := 'sites';
        after := NULL;
    END IF;
    UPDATE jobs x SET progress = prog, result = lists,
                      checkpoint = jsonb_build_object('phase', phase, 'after', after)
    WHERE x.id = j.id;
    RETURN 'more';
END $$;

-- ---- purge of questions (kind 'purge', pseudonymisation) ----
-- POST /v1/surveys/{id}/purge {questions, reason} records the questions here (with the job) and
-- makes the job; the job removes those answers from every response of the survey, from every
-- version in its history (through fv_history_purge_begin, audited) and from the refused and
-- quarantined submissions held for it. Work queued before the purge and not yet written: the
-- worker strips the purged questions from every entry of the survey received before the purge
-- (fv_purge_strip, in its INSERT), so nothing queued brings them back.

CREATE TABLE survey_purges (
    survey_id uuid NOT NULL REFERENCES surveys(id),
    question  text NOT NULL,
    job_id    uuid NOT NULL REFERENCES jobs(id),
    purged_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (survey_id, question, job_id)
);

-- data without the answers purged from survey at or after received (the entry's receipt time).
CREATE FUNCTION fv_purge_strip(survey uuid, data jsonb, received timestamptz) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN data IS NULL OR jsonb_typeof(data) <> 'object' THEN data
                ELSE data - COALESCE((SELECT array_agg(p.question) FROM survey_purges p
                                      WHERE p.survey_id = survey AND p.purged_at >= received), '{}'::text[]) END
$$;

-- Every question name in any version of survey s's definition.
CREATE FUNCTION fv_survey_question_names(s uuid) RETURNS SETOF text
LANGUAGE sql STABLE AS $$
    SELECT DISTINCT q->>'name' FROM survey_versions v, jsonb_array_elements(v.definition->'questions') q
    WHERE v.survey_id = s AND jsonb_typeof(v.definition->'questions') = 'array'
$$;

-- One step of purge job id: at most lim responses of the survey (in id order after the cursor),
-- each: its history rows lose the answers (the step opened the audited purge first), and when its
-- current data held one, a new version 'purge' by the job's creator; then the refused and
-- quarantined submissions of the survey. Returns 'more', 'done' or 'failed:<why>'.
CREATE FUNCTION fv_job_purge_step(id uuid, lim integer) RETURNS text
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    j jobs;
    survey uuid;
    q text[];
    phase text;
    after uuid;
    obj uuid;
    n integer := 0;
    k integer;
    prog jsonb;
BEGIN
    SELECT * INTO j FROM jobs x WHERE x.id = fv_job_purge_step.id;
    survey := (j.params->>'survey_id')::uuid;
    q := ARRAY(SELECT jsonb_array_elements_text(j.params->'questions'));
    IF NOT COALESCE(fv_survey_role(j.created_by, survey) = 'admin', false) THEN
        RETURN 'failed:the admin who asked for the purge is no longer an admin of the survey';
    END IF;
    phase := COALESCE(j.checkpoint->>'phase', 'responses');
    after := (j.checkpoint->>'after')::uuid;
    prog := jsonb_build_object('responses', 0, 'versions', 0, 'refused', 0, 'quarantined', 0, 'done', 0)
            || j.progress;
    PERFORM fv_history_purge_begin(j.created_by, j.org_id, 'survey', survey::text,
                                   jsonb_build_object('job_id', j.id, 'questions', j.params->'questions',
                                                      'reason', j.params->'reason'));
    IF phase = 'responses' THEN
        FOR obj IN SELECT r.id FROM responses r WHERE r.survey_id = survey AND (after IS NULL OR r.id > after)
                   ORDER BY r.id LIMIT lim LOOP
            UPDATE response_events e
            SET state = CASE WHEN jsonb_typeof(e.state->'data') = 'object'
                             THEN jsonb_set(e.state, '{data}', (e.state->'data') - q) ELSE e.state END,
                data = CASE WHEN jsonb_typeof(e.data) = 'object' THEN e.data - q ELSE e.data END
            WHERE e.response_id = obj AND ((e.state->'data') ?| q OR COALESCE(e.data ?| q, false));
            GET DIAGNOSTICS k = ROW_COUNT;
            prog := prog || jsonb_build_object('versions', (prog->>'versions')::int + k);
            WITH w AS (UPDATE responses x SET data = x.data - q, version = x.version + 1, updated_at = now()
                       WHERE x.id = obj AND x.data ?| q RETURNING x.*),
                 e AS (INSERT INTO response_events (response_id, version, action, stage, status, actor, state)
                       SELECT w.id, w.version, 'purge', w.stage, w.status, j.created_by, to_jsonb(w) FROM w)
            SELECT count(*) INTO k FROM w;
            prog := prog || jsonb_build_object('responses', (prog->>'responses')::int + k,
                                               'done', (prog->>'done')::int + 1);
            after := obj;
            n := n + 1;
        END LOOP;
        IF n = lim THEN
            UPDATE jobs x SET progress = prog, checkpoint = jsonb_build_object('phase', 'responses', 'after', after)
            WHERE x.id = j.id;
            RETURN 'more';
        END IF;
    END IF;
    UPDATE refused_submissions f SET data = f.data - q WHERE f.survey_id = survey AND f.data ?| q;
    GET DIAGNOSTICS k = ROW_COUNT;
    prog := prog || jsonb_build_object('refused', (prog->>'refused')::int + k);
    UPDATE quarantine x SET data = x.data - q
    FROM deployments d WHERE d.id = x.deployment_id AND d.survey_id = survey AND x.data ?| q;
    GET DIAGNOSTICS k = ROW_COUNT;
    prog := prog || jsonb_build_object('quarantined', (prog->>'quarantined')::int + k);
    UPDATE jobs x SET progress = prog, checkpoint = '{"phase": "end"}' WHERE x.id = j.id;
    RETURN 'done';
END $$;
