// horo: one include for the whole library.
#pragma once

#include "data/idx.h"
#include "data/sampler.h"
#include "kernels/error.h"
#include "kernels/parallel.h"
#include "nn/autograd.h"
#include "nn/functional.h"
#include "nn/graph.h"
#include "nn/layers.h"
#include "nn/models.h"
#include "nn/module.h"
#include "nn/norm.h"
#include "nn/optim.h"
#include "nn/spec.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "tensor/tensor.h"
