"""The profile store on PostgreSQL: its schema (``schema``), pooled connections
(``connections``), SQL dialect (``dialect``) and store class (``store``)."""
