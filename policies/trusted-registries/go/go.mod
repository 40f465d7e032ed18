module policy.plate.dev/policies/trusted-registries

go 1.24

require policy.plate.dev/sdk v0.0.0

replace policy.plate.dev/sdk => ../../sdk-go
