"""The site as B8 serves it under gunicorn: the project's own WSGI application
(`videoproject.wsgi`), wrapped so that every response says how many SQL queries it took
(`X-Bench-Queries`), the CPU time its thread spent on it (`X-Bench-CPU-Microseconds`: on a
shared machine latency mostly measures the others, CPU time per request does not) and the wall
time from the application's call to its response (`X-Bench-Wall-Microseconds`: what the
client waited beyond it was spent queued in gunicorn or on the way).
Bench-only: production runs `videoproject.wsgi` itself.

Django calls `start_response` after the view has run and before the body is sent, so the count
is final there (a streamed body is not counted, and none of the endpoints B8 drives streams).
Each gunicorn thread has its own database connection, so the wrapper counts that request only.
"""

import time

from django.db import connection

from videoproject.wsgi import application as site

HEADER = "X-Bench-Queries"
CPU_HEADER = "X-Bench-CPU-Microseconds"
WALL_HEADER = "X-Bench-Wall-Microseconds"


def application(environ, start_response):
    count = 0
    started, wall = time.thread_time(), time.perf_counter()

    def counted(execute, sql, params, many, context):
        nonlocal count
        count += 1
        return execute(sql, params, many, context)

    def respond(status, headers, exc_info=None):
        cpu = round((time.thread_time() - started) * 1e6)
        spent = round((time.perf_counter() - wall) * 1e6)
        extra = [(HEADER, str(count)), (CPU_HEADER, str(cpu)), (WALL_HEADER, str(spent))]
        return start_response(status, [*headers, *extra], exc_info)

    with connection.execute_wrapper(counted):
        return site(environ, respond)
