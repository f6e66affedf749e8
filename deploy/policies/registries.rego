# Images only from allowed registries, on the targets listed. A rollback
# restores a recorded spec: its image is judged by today's list too.
package alphaswarm

allowed_registries := {"prod": ["registry.example.com/", "ghcr.io/example/"]}

deny contains msg if {
	input.action in {"start", "rollback"}
	prefixes := allowed_registries[input.target]
	image := input.request.spec.image
	not image_allowed(image, prefixes)
	msg := sprintf("image %s is not from a registry allowed on target %s (%s)", [image, input.target, concat(", ", prefixes)])
}

image_allowed(image, prefixes) if {
	some p in prefixes
	startswith(image, p)
}
