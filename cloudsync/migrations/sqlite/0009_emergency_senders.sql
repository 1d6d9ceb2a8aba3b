-- Parity with postgres 0014: who sent an emergency broadcast, by its id, for ending it.
CREATE INDEX feed_emergency_ids ON feed (json_extract(args, '$.id')) WHERE action = 'emergency';
