-- Who suspended an account, so that a parent can lift only a suspension it
-- made itself: 'parent' when the parent suspended its subaccount, NULL
-- otherwise (active, or suspended by the operator, who alone could suspend
-- before this column existed). The operator's every change of status clears
-- it: an operator's suspension is never the parent's to lift.
ALTER TABLE accounts ADD COLUMN suspended_by TEXT CHECK (suspended_by IN ('parent'));
