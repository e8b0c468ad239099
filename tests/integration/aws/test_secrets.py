"""The signing keys as Secrets Manager holds them: the current one signs, the current and previous ones verify."""

from nextbest.aws import clients, secrets


def test_a_rotated_secret_gives_the_new_key_first_and_keeps_the_previous_one(aws):
    client = clients.client("secretsmanager")
    arn = client.create_secret(Name="nextbest-signing", SecretString="first")["ARN"]
    secrets._keys.clear()
    assert secrets.signing_keys(arn) == [b"first"] and secrets.signing_key(arn) == b"first"

    client.put_secret_value(SecretId=arn, SecretString="second")  # a rotation moves AWSCURRENT on
    secrets._keys.clear()  # as the cache's few minutes passing would

    assert secrets.signing_keys(arn) == [b"second", b"first"] and secrets.signing_key(arn) == b"second"
