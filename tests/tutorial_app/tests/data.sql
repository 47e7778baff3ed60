INSERT INTO user (username, password)
VALUES
  ('test', 'pbkdf2:sha256:1000$BfQs6lwn74DAlJ5i$fafb21dcacf87154857e651c92d205ba3eb89fe42d0d6aed9fc53d09573a3103'),
  ('other', 'pbkdf2:sha256:1000$P85ghFskuQAaw3p0$62dea7fb9ca7e32083e7ff45f8104e380c51dc3fa2af99ede72dbaa91fb16472');

INSERT INTO post (title, body, author_id, created)
VALUES
  ('test title', 'test' || x'0a' || 'body', 1, '2018-01-01 00:00:00');
