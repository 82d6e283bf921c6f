-- A destination's own encode (gateway/src/store/model.rs `EncoderProfile`, as JSON): size, frame rate,
-- bitrates, keyframe interval, H.264 profile; a field left out, or no profile at all, takes the program's.
-- Destinations asking for the same settings share one encode.
-- Keep in step with ../postgres/0010_destination_profile.sql.

ALTER TABLE destinations ADD COLUMN profile TEXT;
