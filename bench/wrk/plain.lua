-- wrk script for a plain GET of the URL's path (health endpoints): only the JSON report.
done = dofile((os.getenv("WRK_LIB") or "bench/wrk") .. "/report.lua")
