# Schemathesis extension hooks for the `openapi` suite (loaded through SCHEMATHESIS_HOOKS by
# e2e/tests/openapi.test.mjs). WHIP and WHEP take an SDP offer as `application/sdp`, which is text: schemathesis
# sends it as it sends `text/plain`.
import schemathesis

schemathesis.serializer.alias("application/sdp", "text/plain")
