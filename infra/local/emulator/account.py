"""Where the emulation runs: moto's default account, in one region."""

ACCOUNT = "123456789012"
REGION = "us-east-1"
PARTITION = "aws"
