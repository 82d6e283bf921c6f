-- A brand kit's picture behind the tiles (an /api/uploads/<sha256> URL), over its background colour, and the font
-- of its text overlays (sans, serif or mono; NULL: sans).
-- Keep in step with ../sqlite/0015_brand_picture_and_font.sql.

ALTER TABLE brands ADD COLUMN background_image TEXT;
ALTER TABLE brands ADD COLUMN font TEXT;
