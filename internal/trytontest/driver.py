# trytontest driver: runs operations through trytond's own ORM.
#
# Started by internal/trytontest (driver.go) as
#
#     /usr/bin/python3 -c BOOTSTRAP DRIVER_SOURCE CONF DBNAME
#
# It loads the Pool of DBNAME once, prints one line {"ready": ...} and then
# serves requests, one JSON object a line on stdin, one JSON answer a line
# on stdout, until stdin ends:
#
#     {"user": "admin", "context": {...}, "ops": [{"op": "create", ...}, ...]}
#
# All ops of a request run in ONE transaction, started as root and switched
# to the request's user (a login; default "admin"); an op's own "user" and
# "context" apply to that op only. The transaction is committed after the
# last op. The answer is {"results": [one per op]} or, if an op or the commit
# raised, {"error": {"op": index or -1, "type", "message", "traceback"}}
# after a rollback.
#
# Values in requests may use trytond's JSON-RPC encoding for non-JSON types
# ({"__class__": "date", "year": ..., ...}, "datetime", "time", "timedelta",
# "Decimal", "bytes"). Answers encode records as their ids, datetimes, dates
# and times as ISO 8601 strings, Decimals as strings, bytes as base64 and
# timedeltas as seconds.
#
# Between requests the driver closes its connections to the database, so
# that the database can be cloned (CREATE DATABASE ... TEMPLATE) or dropped.
import base64
import contextlib
import datetime
import decimal
import json
import os
import sys
import traceback


def main(conf, dbname):
    # stdout carries the protocol only: anything else printing to it
    # (trytond, a test's snippet) goes to stderr instead.
    out = os.fdopen(os.dup(1), 'w', encoding='utf-8')
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    import trytond
    from trytond.config import config
    config.update_etc(conf)
    from trytond import backend
    from trytond.pool import Pool
    from trytond.protocols.jsonrpc import JSONDecoder
    from trytond.transaction import Transaction

    pool = Pool(dbname)
    with Transaction().start(dbname, 0, readonly=True):
        pool.init()
    backend.Database(dbname).close()

    def reply(obj):
        out.write(json.dumps(obj, default=encode, separators=(',', ':')))
        out.write('\n')
        out.flush()

    reply({'ready': True, 'trytond': trytond.__version__})
    decoder = JSONDecoder()
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            request = json.loads(line, object_hook=decoder)
            answer = {'results': serve(pool, Transaction, dbname, request)}
        except OpError as e:
            answer = {'error': e.as_dict()}
        except Exception as e:
            answer = {'error': OpError(-1, e).as_dict()}
        finally:
            try:
                backend.Database(dbname).close()
            except Exception:
                pass
        reply(answer)


class OpError(Exception):
    def __init__(self, index, exc):
        super().__init__(index, exc)
        self.index = index
        self.exc = exc
        self.tb = ''.join(traceback.format_exception(
            type(exc), exc, exc.__traceback__))

    def as_dict(self):
        exc = self.exc
        message = getattr(exc, 'message', None)
        if not isinstance(message, str):
            message = str(exc)
        description = getattr(exc, 'description', '')
        if isinstance(description, str) and description:
            message += ': ' + description
        return {
            'op': self.index,
            'type': type(exc).__name__,
            'message': message,
            'traceback': self.tb,
            }


def serve(pool, Transaction, dbname, request):
    ops = request.get('ops') or []
    results = []
    index = -1
    try:
        with Transaction().start(
                dbname, 0, context=request.get('context') or {}) as tr, \
                contextlib.ExitStack() as outer:
            outer.enter_context(
                tr.set_user(user_id(pool, request.get('user') or 'admin')))
            for index, op in enumerate(ops):
                with contextlib.ExitStack() as stack:
                    if op.get('user'):
                        stack.enter_context(
                            tr.set_user(user_id(pool, op['user'])))
                    if op.get('context'):
                        stack.enter_context(tr.set_context(op['context']))
                    handler = OPS.get(op.get('op'))
                    if handler is None:
                        raise ValueError('unknown op %r (known: %s)' % (
                                op.get('op'), ', '.join(sorted(OPS))))
                    results.append(handler(pool, Transaction, op))
            index = -1  # the commit, on leaving the with
    except Exception as e:
        raise OpError(index, e)
    return results


def user_id(pool, login):
    if isinstance(login, int):
        return login
    User = pool.get('res.user')
    from trytond.transaction import Transaction
    with Transaction().set_user(0), \
            Transaction().set_context(active_test=False):
        users = User.search([('login', '=', login)], limit=1)
    if not users:
        raise ValueError('no res.user with login %r' % login)
    return users[0].id


def order(op):
    value = op.get('order')
    if not value:
        return None
    return [tuple(o) for o in value]


def op_create(pool, Transaction, op):
    Model = pool.get(op['model'])
    return [r.id for r in Model.create(op.get('values') or [])]


def op_write(pool, Transaction, op):
    Model = pool.get(op['model'])
    Model.write(Model.browse(op.get('ids') or []), op.get('values') or {})
    return None


def op_delete(pool, Transaction, op):
    Model = pool.get(op['model'])
    Model.delete(Model.browse(op.get('ids') or []))
    return None


def op_search(pool, Transaction, op):
    Model = pool.get(op['model'])
    return [r.id for r in Model.search(
            op.get('domain') or [], offset=op.get('offset') or 0,
            limit=op.get('limit') or None, order=order(op))]


def op_search_count(pool, Transaction, op):
    Model = pool.get(op['model'])
    return Model.search_count(op.get('domain') or [])


def op_search_read(pool, Transaction, op):
    Model = pool.get(op['model'])
    return Model.search_read(
        op.get('domain') or [], offset=op.get('offset') or 0,
        limit=op.get('limit') or None, order=order(op),
        fields_names=op.get('fields') or None)


def op_read(pool, Transaction, op):
    Model = pool.get(op['model'])
    return Model.read(op.get('ids') or [], op.get('fields') or None)


def op_user_create(pool, Transaction, op):
    User = pool.get('res.user')
    values = {'login': op['login'], 'name': op.get('name') or op['login']}
    if op.get('password'):
        values['password'] = op['password']
    values.update(op.get('values') or {})
    with Transaction().set_user(0):
        user, = User.create([values])
    return user.id


def op_call(pool, Transaction, op):
    Model = pool.get(op['model'])
    args = list(op.get('args') or [])
    if 'records' in op:
        args.insert(0, Model.browse(op['records'] or []))
    return getattr(Model, op['method'])(*args)


def op_python(pool, Transaction, op):
    from trytond.pool import Pool
    env = {
        'pool': pool,
        'Pool': Pool,
        'Transaction': Transaction,
        'args': op.get('args'),
        'result': None,
        }
    exec(compile(op['code'], '<trytontest snippet>', 'exec'), env)
    return env['result']


OPS = {
    'create': op_create,
    'write': op_write,
    'delete': op_delete,
    'search': op_search,
    'search_count': op_search_count,
    'search_read': op_search_read,
    'read': op_read,
    'user_create': op_user_create,
    'call': op_call,
    'python': op_python,
    }


def encode(obj):
    if isinstance(obj, (datetime.datetime, datetime.date, datetime.time)):
        return obj.isoformat()
    if isinstance(obj, datetime.timedelta):
        return obj.total_seconds()
    if isinstance(obj, decimal.Decimal):
        return str(obj)
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(obj)).decode('ascii')
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    if hasattr(obj, '__name__') and hasattr(obj, 'id') \
            and hasattr(obj, '_values'):
        return obj.id  # a record
    raise TypeError('cannot encode %s as JSON' % type(obj).__name__)


if __name__ == '__main__':
    main(sys.argv[1], sys.argv[2])
