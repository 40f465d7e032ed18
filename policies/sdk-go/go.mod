module policy.plate.dev/sdk

go 1.24
