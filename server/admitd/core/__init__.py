"""The pure decision core: typed request context, facts, decisions and `decide()`.

Import from the modules (`admitd.core.decide`, `admitd.core.decision`, ...): the
package itself re-exports nothing, so policy and certificate modules can use
`admitd.core.context` without importing the whole core.
"""
