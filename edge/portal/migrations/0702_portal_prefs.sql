-- A resident's display preference (适老化 large text), kept with the login so it follows the
-- resident to another phone; the pages also remember it in a cookie without a login.
ALTER TABLE portal_residents ADD COLUMN big_text INTEGER NOT NULL DEFAULT 0;
