-- Who sent an emergency broadcast: its id (the box's Emergency record, in the feed's args) is
-- looked up when someone ends it, and only an admin of the sender's area or a wider one may
-- (security probe 5: a street admin ended a city's emergency on the street's boxes). Partial:
-- emergencies are a sliver of the feed.
CREATE INDEX feed_emergency_ids ON feed ((args ->> 'id')) WHERE action = 'emergency';
