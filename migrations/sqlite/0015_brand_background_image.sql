-- A brand kit's picture behind the tiles (an /api/uploads/<sha256> URL), over its background colour.
-- Keep in step with ../postgres/0015_brand_background_image.sql.

ALTER TABLE brands ADD COLUMN background_image TEXT;
