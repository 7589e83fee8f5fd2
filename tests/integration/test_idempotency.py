"""A submission id is the key: submitting it again answers the same and never duplicates (other
content under a taken id is refused, not dropped: test_submission_ids.py)."""
from conftest import good_data
from fvharness import new_id


def count(cluster, rid):
    return cluster.psql("SELECT count(*) FROM responses WHERE id = %s", rid)[0][0]


def test_same_id_twice_back_to_back(world):
    rid = new_id()
    first = world.submit(good_data(1), id=rid)
    second = world.submit(good_data(1), id=rid)
    assert first.status_code == 202, first.text
    assert second.status_code == 202, second.text
    assert first.json() == second.json() == {"id": rid, "status": "queued"}
    world.cluster.wait_drained()
    assert count(world.cluster, rid) == 1


def test_same_id_after_it_was_written_keeps_the_first(world):
    rid = new_id()
    assert world.submit(good_data(2), id=rid).status_code == 202
    assert world.wait_readable(rid)["data"] == good_data(2)
    again = world.submit(good_data(3), id=rid)
    assert again.status_code == 202, again.text
    assert again.json() == {"id": rid, "status": "queued"}
    world.cluster.wait_drained()
    assert count(world.cluster, rid) == 1
    assert world.enum.get(f"/v1/responses/{rid}").json()["data"] == good_data(2)
    # Other answers under the same id are no retry: refused and kept for the submitter to see
    # (test_submission_ids.py); a retry with the first answers is.
    st = world.enum.get(f"/v1/submissions/{rid}").json()
    assert st["status"] == "refused" and st["entry"]["data"] == good_data(3), st


def test_many_ids_each_written_once(world):
    ids = [new_id() for _ in range(30)]
    for rid in ids + ids[:10]:  # the first ten twice
        r = world.submit(good_data(), id=rid)
        assert r.status_code == 202, r.text
    world.cluster.wait_drained()
    rows = world.cluster.psql("SELECT id::text, count(*) FROM responses WHERE id = ANY(%s::uuid[]) "
                              "GROUP BY id", ids)
    assert sorted(r[0] for r in rows) == sorted(ids)
    assert all(r[1] == 1 for r in rows)
