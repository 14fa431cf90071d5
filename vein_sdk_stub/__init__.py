"""Stand-in for the vendor's BioAPI-style palm-vein SDK, driving a synthetic population
(built in issue [3 of 8])."""
