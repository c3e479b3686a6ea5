"""tollgate_shared: the small, boring kit every Tollgate service uses."""
