"""Deleting is the owner's: another tenant's DELETE is the usual 404 and changes nothing."""

from __future__ import annotations

from support import assert_error, minimal_spec, plain_spec


def test_another_tenants_delete_is_a_404_and_deletes_nothing(secure_api):
    a = secure_api.make_key("del-a", "--tenant", "del-tenant-a")["key"]
    b = secure_api.make_key("del-b", "--tenant", "del-tenant-b")["key"]
    r = secure_api.redis()
    with secure_api.client(a) as ca, secure_api.client(b) as cb:
        job = ca.post("/jobs", json=minimal_spec())
        assert job.status_code == 201, job.text
        job_id = job.json()["id"]
        sweep = ca.post("/sweeps", json={"base": plain_spec(), "grid": {"optimizer.lr": [0.1]}})
        assert sweep.status_code == 201, sweep.text
        sweep_id = sweep.json()["id"]
        (secure_api.artifact_dir / "jobs" / job_id).mkdir(parents=True)

        err = assert_error(cb.delete(f"/jobs/{job_id}"), 404, "not_found")
        assert job_id in err["message"]
        assert_error(cb.delete(f"/sweeps/{sweep_id}"), 404, "not_found")
        assert_error(secure_api.client().delete(f"/jobs/{job_id}"), 401)

        # untouched: still queued (not even cancelled), its files and its sweep still there
        assert ca.get(f"/jobs/{job_id}").json()["status"] == "queued"
        assert r.hget(f"tl:job:{job_id}", "cancel_requested") == "0"
        assert (secure_api.artifact_dir / "jobs" / job_id).is_dir()
        assert ca.get(f"/sweeps/{sweep_id}").status_code == 200

        assert ca.delete(f"/jobs/{job_id}").status_code == 204
        assert ca.delete(f"/sweeps/{sweep_id}").status_code == 204
        assert_error(ca.get(f"/jobs/{job_id}"), 404)
