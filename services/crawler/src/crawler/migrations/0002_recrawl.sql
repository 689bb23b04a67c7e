-- Re-crawl and de-duplication: SimHash of each page's text, indexed by its four 16-bit bands
-- (near-duplicates agree on at least one), and exact duplicates by content hash.
ALTER TABLE pages ADD COLUMN simhash bigint;
ALTER TABLE pages ADD COLUMN simhash_bands integer[];
CREATE INDEX pages_content_hash ON pages (content_hash);
CREATE INDEX pages_simhash_bands ON pages USING gin (simhash_bands);
