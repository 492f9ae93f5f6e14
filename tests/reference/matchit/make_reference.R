# Reference matched sets and balance tables from R's MatchIt, for tests/test_matching_reference.py
# and tests/test_balance_reference.py.
#
# Requires MatchIt >= 4.5.4: in 4.5.1 (Debian's r-cran-matchit) the caliper is ignored on some
# systems (MatchIt issue #163), so caliper scenarios would silently match everyone.
# The committed CSVs were produced with MatchIt 4.7.2 on R 4.2.2.
#
# Run from the project root:  Rscript tests/reference/matchit/make_reference.R
# (with MatchIt >= 4.5.4 on .libPaths(), e.g. R_LIBS=/path/to/private/library)

suppressPackageStartupMessages(library(MatchIt))
stopifnot(packageVersion("MatchIt") >= "4.5.4")

out <- file.path("tests", "reference", "matchit")
data("lalonde", package = "MatchIt")
lalonde$id <- rownames(lalonde)
write.csv(lalonde[, c("id", setdiff(names(lalonde), "id"))], file.path(out, "lalonde.csv"),
          row.names = FALSE)
# MatchIt breaks ties in the distance by row position, and so does esi.match. lalonde has units
# with identical covariates, so the row order matters: every scenario runs on lalonde either in
# its own order (row_order "natural": NSW1, NSW2, ..., ids that do not sort in row order) or
# sorted by id in C collation (row_order "sorted": the canonical order of esi's pipeline).
# The Python tests give esi.match the same data frame in the same order.
sorted_lalonde <- lalonde[order(lalonde$id, method = "radix"), ]

f <- treat ~ age + educ + race + married + nodegree + re74 + re75

# One row per scenario; the Python tests call esi.match() with exactly these arguments.
# distance: "propensity" = glm fitted probability (MatchIt's default),
#           "logit" = glm linear predictor (link = "linear.logit"),
#           "mahalanobis" = distance = "mahalanobis" on the covariates of f (no propensity score).
# mahvars: Mahalanobis matching on these variables within the caliper on the propensity score.
base <- read.csv(text = "
scenario,distance,mahvars,caliper,std_caliper,ratio,replace,order,exact,discard,estimand
default,propensity,,,TRUE,1,FALSE,largest,,none,ATT
logit_caliper,logit,,0.2,TRUE,1,FALSE,largest,,none,ATT
ratio2_caliper,logit,,0.2,TRUE,2,FALSE,largest,,none,ATT
ratio2_propensity_caliper,propensity,,0.1,TRUE,2,FALSE,largest,,none,ATT
replace,propensity,,,TRUE,1,TRUE,largest,,none,ATT
replace_caliper,logit,,0.2,TRUE,1,TRUE,largest,,none,ATT
replace_ratio2,logit,,,TRUE,2,TRUE,largest,,none,ATT
smallest,propensity,,,TRUE,1,FALSE,smallest,,none,ATT
smallest_caliper,logit,,0.2,TRUE,1,FALSE,smallest,,none,ATT
data_order_caliper,logit,,0.1,TRUE,1,FALSE,data,,none,ATT
exact_race,logit,,0.2,TRUE,1,FALSE,largest,race,none,ATT
exact_married_nodegree,propensity,,,TRUE,1,FALSE,largest,married+nodegree,none,ATT
raw_caliper,propensity,,0.05,FALSE,1,FALSE,largest,,none,ATT
discard_both,logit,,0.2,TRUE,1,FALSE,largest,,both,ATT
discard_control,propensity,,,TRUE,1,FALSE,largest,,control,ATT
atc_replace_caliper,logit,,0.2,TRUE,1,TRUE,largest,,none,ATC
mahalanobis,mahalanobis,,,TRUE,1,FALSE,data,,none,ATT
mahalanobis_ratio2,mahalanobis,,,TRUE,2,FALSE,data,,none,ATT
mahalanobis_replace,mahalanobis,,,TRUE,1,TRUE,data,,none,ATT
mahalanobis_replace_ratio2,mahalanobis,,,TRUE,2,TRUE,data,,none,ATT
mahvars_caliper,propensity,age+educ+re74+re75,0.2,TRUE,1,FALSE,largest,,none,ATT
mahvars_race_caliper,propensity,age+educ+race+re74+re75,0.2,TRUE,1,FALSE,largest,,none,ATT
mahvars_ratio2_caliper,logit,age+educ+re74+re75,0.1,TRUE,2,FALSE,largest,,none,ATT
mahvars_replace_caliper,propensity,age+educ+re74+re75,0.2,TRUE,1,TRUE,largest,,none,ATT
mahvars_exact_caliper,propensity,age+educ+re74+re75,0.2,TRUE,1,FALSE,largest,married,none,ATT
", colClasses = "character", na.strings = character(0))
# every scenario in both row orders; the sorted ones keep their plain names
scenarios <- rbind(cbind(base, row_order = "sorted"),
                   transform(cbind(base, row_order = "natural"),
                             scenario = paste0("natural_", scenario)))
scenarios <- scenarios[, c("scenario", "row_order", setdiff(names(base), "scenario"))]
write.csv(scenarios, file.path(out, "scenarios.csv"), row.names = FALSE)

for (i in seq_len(nrow(scenarios))) {
  s <- scenarios[i, ]
  dat <- if (s$row_order == "sorted") sorted_lalonde else lalonde
  mahalanobis <- s$distance == "mahalanobis"
  args <- list(formula = f, data = dat, method = "nearest",
               distance = if (mahalanobis) "mahalanobis" else "glm",
               ratio = as.integer(s$ratio), replace = as.logical(s$replace),
               m.order = s$order, discard = s$discard, estimand = s$estimand)
  if (!mahalanobis) args$link <- if (s$distance == "logit") "linear.logit" else "logit"
  if (nzchar(s$mahvars)) args$mahvars <- as.formula(paste("~", s$mahvars))
  if (nzchar(s$caliper)) {
    args$caliper <- as.numeric(s$caliper)
    args$std.caliper <- as.logical(s$std_caliper)
  }
  if (nzchar(s$exact)) args$exact <- as.formula(paste("~", s$exact))
  m <- do.call(matchit, args)

  # Units: distance, weights, subclass, discarded (weights are MatchIt's normalised ATT weights)
  # distance with 17 significant digits: exact ties (a unit midway between two others on the
  # logit scale) are broken by rounding, so the tests also match on R's own distance.
  # Mahalanobis matching on the covariates has no distance (NA).
  units <- data.frame(id = names(m$treat), treat = m$treat,
                      distance = if (is.null(m$distance)) NA else sprintf("%.17g", m$distance),
                      weights = m$weights, discarded = m$discarded,
                      subclass = if (is.null(m$subclass)) NA else as.integer(as.character(m$subclass)))
  write.csv(units, file.path(out, sprintf("units_%s.csv", s$scenario)), row.names = FALSE)

  # Pairs: one row per matched (treated, control), in match-matrix column order
  mm <- m$match.matrix
  pairs <- do.call(rbind, lapply(seq_len(ncol(mm)), function(j) {
    data.frame(focal = rownames(mm), other = mm[, j], column = j)
  }))
  pairs <- pairs[!is.na(pairs$other), ]
  pairs <- pairs[order(match(pairs$focal, rownames(mm)), pairs$column), ]
  # Mahalanobis matching: each pair's Mahalanobis distance, from MatchIt's own
  # mahalanobis_dist() (the transformation matchit() applies: standardised covariates, pooled
  # within-group covariance, generalised inverse when singular)
  if (mahalanobis || nzchar(s$mahvars)) {
    mform <- if (mahalanobis) f else as.formula(paste("treat ~", s$mahvars))
    dm <- mahalanobis_dist(mform, data = dat)
    pairs$mahalanobis <- sprintf("%.17g", dm[cbind(pairs$focal, pairs$other)])
  }
  write.csv(pairs, file.path(out, sprintf("pairs_%s.csv", s$scenario)), row.names = FALSE)

  # Balance as summary.matchit() reports it (binary covariates standardised by sqrt(p(1-p)))
  sm <- summary(m, un = TRUE)
  tidy <- function(tab, sample) {
    data.frame(term = rownames(tab), sample = sample,
               mean_treated = tab[, "Means Treated"], mean_control = tab[, "Means Control"],
               smd = tab[, "Std. Mean Diff."], variance_ratio = tab[, "Var. Ratio"],
               ecdf_mean = tab[, "eCDF Mean"], ecdf_max = tab[, "eCDF Max"])
  }
  bal <- rbind(tidy(sm$sum.all, "before"), tidy(sm$sum.matched, "after"))
  write.csv(bal, file.path(out, sprintf("summary_%s.csv", s$scenario)), row.names = FALSE)
  nn <- sm$nn
  write.csv(data.frame(row = rownames(nn), control = nn[, "Control"], treated = nn[, "Treated"]),
            file.path(out, sprintf("nn_%s.csv", s$scenario)), row.names = FALSE)
}

# MatchIt's own Mahalanobis coordinates (transform_covariates(), as matchit() calls it: the
# Euclidean distance on them is the Mahalanobis distance that nn_matchC_mahcovs() compares,
# the first column orders its search), so that the tests can run esi's matching on R's
# floating-point values: lalonde has a treated unit exactly midway between two controls
# (NSW89, aged 21, between PSID383 and PSID407, aged 19 and 23, otherwise identical), a tie
# that R's rounding breaks one way and esi's may break the other.
for (vars in unique(ifelse(scenarios$distance == "mahalanobis", "covariates",
                           scenarios$mahvars))) {
  if (!nzchar(vars)) next
  form <- if (vars == "covariates") f else as.formula(paste("~", vars))
  for (ord in c("natural", "sorted")) {
    dat <- if (ord == "sorted") sorted_lalonde else lalonde
    X <- MatchIt:::transform_covariates(form, data = dat, method = "mahalanobis",
                                        treat = dat$treat)
    coords <- data.frame(id = dat$id, apply(X, 2, function(v) sprintf("%.17g", v)),
                         check.names = FALSE)
    write.csv(coords, file.path(out, sprintf("mahcovs_%s_%s.csv", gsub("+", "_", vars,
                                                                       fixed = TRUE), ord)),
              row.names = FALSE)
  }
}

# Propensity model coefficients (glm(family = binomial)) for the fit check
g <- glm(f, data = lalonde, family = binomial)
write.csv(data.frame(term = names(coef(g)), estimate = unname(coef(g)),
                     std_error = unname(sqrt(diag(vcov(g))))),
          file.path(out, "glm_coefficients.csv"), row.names = FALSE)
writeLines(c(sprintf("MatchIt %s", packageVersion("MatchIt")), R.version.string),
           file.path(out, "versions.txt"))
