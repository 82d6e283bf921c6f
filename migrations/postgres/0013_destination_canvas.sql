-- The program canvas a destination streams: the id of one of the scene's canvases (`canvases[].id`), or NULL
-- for the program's main canvas.
-- Keep in step with ../sqlite/0013_destination_canvas.sql.

ALTER TABLE destinations ADD COLUMN canvas TEXT;
