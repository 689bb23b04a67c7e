CREATE TABLE widgets (id text PRIMARY KEY, n integer NOT NULL DEFAULT 0);
