// Package image holds the controller image's Dockerfile (built by
// scripts/image.sh) and the test that builds it and runs it against the
// local Docker Engine. It has no Go API.
package image
