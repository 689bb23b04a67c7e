ALTER TABLE widgets ADD COLUMN label text;
