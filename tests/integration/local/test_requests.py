"""What the emulation's requests carry: moto checks no signature, so none is computed."""

from moto.dynamodb.models import dynamodb_backends

from infra.local.emulator import ACCOUNT, REGION


def test_given_the_emulation_when_a_client_makes_a_request_then_it_goes_unsigned_to_the_emulations_account(emulation):
    ddb = emulation.client("dynamodb")
    sent = []
    ddb.meta.events.register_first("before-send.dynamodb.PutItem", lambda request, **_: sent.append(request.headers))
    table = emulation.output("TableName")

    ddb.put_item(TableName=table, Item={"pk": {"S": "k"}, "sk": {"S": "X"}})

    assert "Authorization" not in sent[0]
    stored = dynamodb_backends[ACCOUNT][REGION].get_table(table)
    assert [i.hash_key.value for i in stored.all_items()] == ["k"]
