# The cheapest bundle: one deny rule that never matches (BenchmarkEvaluate's
# fixed cost of an evaluation).
package alphaswarm

deny contains "never" if input.action == "no such action"
