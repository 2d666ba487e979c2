// The imagine C++ library: include this one header to train and generate from C++.
// Link against libimagine (CMake target imagine_lib). See README.md and docs/.
#pragma once
#include "core/error.h"
#include "core/options.h"
#include "core/runtime.h"
#include "data/text_corpus.h"
#include "generate/sampler.h"
#include "generate/text_generate.h"
#include "models/gpt.h"
#include "models/text_model.h"
#include "tokenize/tokenizer.h"
#include "train/train_text.h"
#include "train/trainer.h"
