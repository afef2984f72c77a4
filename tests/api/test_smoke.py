from tests.checks import assert_problem
from tests.factories.people import headers_for, make_world


def test_coordinator_reads_own_participant_and_not_other_site(client, db):
    world = make_world(db)
    headers = headers_for(client, world.coordinator_a)
    own = client.get(f"/api/v1/participants/{world.patient_a.participant.id}", headers=headers)
    assert own.status_code == 200
    assert own.get_json()["full_name"] == world.patient_a.user.full_name
    foreign = client.get(f"/api/v1/participants/{world.patient_b.participant.id}", headers=headers)
    assert_problem(foreign, 404)
