// The HTTP API's OpenAPI 3.1 document, served at /openapi.json; docs/openapi.json holds the same
// text (a test keeps them equal; scripts/make-openapi.py writes both).
enum OpenAPIDocument {
    static let json = #"""
{
  "openapi": "3.1.0",
  "info": {
    "title": "repengd HTTP API",
    "version": "0.1.0",
    "description": "OpenAI-compatible completions with per-request steering (control vectors), plus control, vectors and training. On the Unix socket no token is needed (the socket's mode and allowed_uids decide); on TCP every request needs the bearer token (Authorization: Bearer TOKEN, or ?token=)."
  },
  "servers": [
    {
      "url": "http://127.0.0.1:8080"
    }
  ],
  "security": [
    {
      "bearer": []
    }
  ],
  "paths": {
    "/v1/chat/completions": {
      "post": {
        "summary": "Chat completion (OpenAI shape) with optional steering",
        "operationId": "createChatCompletion",
        "requestBody": {
          "required": true,
          "content": {
            "application/json": {
              "schema": {
                "$ref": "#/components/schemas/ChatCompletionRequest"
              }
            }
          }
        },
        "responses": {
          "200": {
            "description": "A chat.completion object, or chat.completion.chunk events when stream is true",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/ChatCompletion"
                }
              },
              "text/event-stream": {
                "schema": {
                  "type": "string"
                }
              }
            }
          },
          "400": {
            "description": "An error in OpenAI's shape",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "401": {
            "description": "An error in OpenAI's shape",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "403": {
            "description": "An error in OpenAI's shape",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "404": {
            "description": "An error in OpenAI's shape",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "409": {
            "description": "An error in OpenAI's shape",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "413": {
            "description": "An error in OpenAI's shape",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "429": {
            "description": "An error in OpenAI's shape",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "503": {
            "description": "An error in OpenAI's shape",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          }
        }
      }
    },
    "/v1/completions": {
      "post": {
        "summary": "Text completion (OpenAI shape) with optional steering",
        "operationId": "createCompletion",
        "requestBody": {
          "required": true,
          "content": {
            "application/json": {
              "schema": {
                "$ref": "#/components/schemas/CompletionRequest"
              }
            }
          }
        },
        "responses": {
          "200": {
            "description": "A text_completion object, or text_completion events when stream is true",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Completion"
                }
              },
              "text/event-stream": {
                "schema": {
                  "type": "string"
                }
              }
            }
          },
          "400": {
            "description": "An error in OpenAI's shape",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "401": {
            "description": "An error in OpenAI's shape",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "403": {
            "description": "An error in OpenAI's shape",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "404": {
            "description": "An error in OpenAI's shape",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "409": {
            "description": "An error in OpenAI's shape",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "413": {
            "description": "An error in OpenAI's shape",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "429": {
            "description": "An error in OpenAI's shape",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "503": {
            "description": "An error in OpenAI's shape",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          }
        }
      }
    },
    "/v1/models": {
      "get": {
        "summary": "Resident models",
        "operationId": "listModels",
        "responses": {
          "200": {
            "description": "The models",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/ModelList"
                }
              }
            }
          },
          "401": {
            "description": "An error in OpenAI's shape",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "403": {
            "description": "An error in OpenAI's shape",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          }
        }
      }
    },
    "/v1/control": {
      "get": {
        "summary": "A model's current control",
        "operationId": "getControl",
        "parameters": [
          {
            "name": "model",
            "in": "query",
            "schema": {
              "type": "string"
            }
          }
        ],
        "responses": {
          "200": {
            "description": "The control",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Control"
                }
              }
            }
          },
          "401": {
            "description": "An error in OpenAI's shape",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "403": {
            "description": "An error in OpenAI's shape",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "404": {
            "description": "An error in OpenAI's shape",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          }
        }
      },
      "put": {
        "summary": "Set a model's control (persisted; what requests without 'control' use)",
        "operationId": "setControl",
        "requestBody": {
          "required": true,
          "content": {
            "application/json": {
              "schema": {
                "$ref": "#/components/schemas/SetControlRequest"
              }
            }
          }
        },
        "responses": {
          "200": {
            "description": "The control now in force",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Control"
                }
              }
            }
          },
          "400": {
            "description": "An error in OpenAI's shape",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "401": {
            "description": "An error in OpenAI's shape",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "403": {
            "description": "An error in OpenAI's shape",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "404": {
            "description": "An error in OpenAI's shape",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "409": {
            "description": "An error in OpenAI's shape",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          }
        }
      },
      "delete": {
        "summary": "Reset a model's control",
        "operationId": "resetControl",
        "parameters": [
          {
            "name": "model",
            "in": "query",
            "schema": {
              "type": "string"
            }
          }
        ],
        "responses": {
          "200": {
            "description": "The (empty) control",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Control"
                }
              }
            }
          },
          "401": {
            "description": "An error in OpenAI's shape",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "403": {
            "description": "An error in OpenAI's shape",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "404": {
            "description": "An error in OpenAI's shape",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          }
        }
      }
    },
    "/v1/vectors": {
      "get": {
        "summary": "Vectors in the watched directory",
        "operationId": "listVectors",
        "responses": {
          "200": {
            "description": "The vectors",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/VectorList"
                }
              }
            }
          },
          "401": {
            "description": "An error in OpenAI's shape",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "403": {
            "description": "An error in OpenAI's shape",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          }
        }
      }
    },
    "/v1/train": {
      "post": {
        "summary": "Train a vector from contrastive pairs and save it in the vector directory",
        "operationId": "train",
        "requestBody": {
          "required": true,
          "content": {
            "application/json": {
              "schema": {
                "$ref": "#/components/schemas/TrainRequest"
              }
            }
          }
        },
        "responses": {
          "200": {
            "description": "stream true (default): events 'progress' ({done, total, stage}), then 'result' (TrainResult) or 'error' (Error). stream false: the TrainResult.",
            "content": {
              "text/event-stream": {
                "schema": {
                  "type": "string"
                }
              },
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/TrainResult"
                }
              }
            }
          },
          "400": {
            "description": "An error in OpenAI's shape",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "401": {
            "description": "An error in OpenAI's shape",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "403": {
            "description": "An error in OpenAI's shape",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "404": {
            "description": "An error in OpenAI's shape",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "409": {
            "description": "An error in OpenAI's shape",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "413": {
            "description": "An error in OpenAI's shape",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "429": {
            "description": "An error in OpenAI's shape",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          }
        }
      }
    },
    "/health": {
      "get": {
        "summary": "Liveness",
        "operationId": "health",
        "responses": {
          "200": {
            "description": "Serving",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Health"
                }
              }
            }
          },
          "503": {
            "description": "Shutting down",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Health"
                }
              }
            }
          }
        }
      }
    },
    "/openapi.json": {
      "get": {
        "summary": "This document",
        "operationId": "openapi",
        "responses": {
          "200": {
            "description": "OpenAPI 3.1",
            "content": {
              "application/json": {}
            }
          }
        }
      }
    },
    "/": {
      "get": {
        "summary": "The steering playground (HTML)",
        "operationId": "playground",
        "responses": {
          "200": {
            "description": "HTML page",
            "content": {
              "text/html": {}
            }
          }
        }
      }
    }
  },
  "components": {
    "securitySchemes": {
      "bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "The token in the daemon's token file (STATE/http-token); repengctl http-url prints a URL with it. Not needed on the Unix socket."
      }
    },
    "schemas": {
      "Error": {
        "type": "object",
        "required": [
          "error"
        ],
        "properties": {
          "error": {
            "type": "object",
            "required": [
              "message",
              "type",
              "code"
            ],
            "properties": {
              "message": {
                "type": "string"
              },
              "type": {
                "type": "string"
              },
              "param": {
                "type": [
                  "string",
                  "null"
                ]
              },
              "code": {
                "type": "string"
              }
            }
          }
        }
      },
      "ControlTerm": {
        "type": "object",
        "required": [
          "vector",
          "coeff"
        ],
        "properties": {
          "vector": {
            "type": "string",
            "description": "A vector name from /v1/vectors"
          },
          "coeff": {
            "type": "number",
            "description": "Coefficient (\"coefficient\" is accepted too)"
          }
        }
      },
      "ChatMessage": {
        "type": "object",
        "required": [
          "role",
          "content"
        ],
        "properties": {
          "role": {
            "type": "string",
            "enum": [
              "system",
              "user",
              "assistant"
            ]
          },
          "content": {
            "oneOf": [
              {
                "type": "string"
              },
              {
                "type": "array",
                "items": {
                  "type": "object",
                  "properties": {
                    "type": {
                      "const": "text"
                    },
                    "text": {
                      "type": "string"
                    }
                  }
                }
              }
            ]
          }
        }
      },
      "ChatCompletionRequest": {
        "type": "object",
        "required": [
          "messages"
        ],
        "properties": {
          "messages": {
            "type": "array",
            "items": {
              "$ref": "#/components/schemas/ChatMessage"
            }
          },
          "chat_format": {
            "type": "string",
            "enum": [
              "chatml",
              "gemma",
              "plain"
            ],
            "description": "repengd: a built-in layout instead of the model's own chat template."
          },
          "model": {
            "type": "string",
            "description": "A model id from /v1/models; empty or absent: the default model."
          },
          "max_tokens": {
            "type": "integer",
            "minimum": 1,
            "description": "Tokens to generate (default: the daemon's default_max_tokens)."
          },
          "max_completion_tokens": {
            "type": "integer",
            "minimum": 1,
            "description": "Same as max_tokens (newer clients send this)."
          },
          "temperature": {
            "type": "number",
            "minimum": 0,
            "maximum": 100,
            "default": 1,
            "description": "0 is greedy."
          },
          "top_p": {
            "type": "number",
            "default": 1
          },
          "top_k": {
            "type": "integer",
            "minimum": 0,
            "default": 0,
            "description": "repengd: 0 is off."
          },
          "min_p": {
            "type": "number",
            "default": 0,
            "description": "repengd."
          },
          "repetition_penalty": {
            "type": "number",
            "default": 1,
            "description": "repengd: transformers' multiplicative penalty."
          },
          "frequency_penalty": {
            "type": "number",
            "description": "Only 0 is accepted."
          },
          "presence_penalty": {
            "type": "number",
            "description": "Only 0 is accepted."
          },
          "seed": {
            "type": "integer"
          },
          "stop": {
            "oneOf": [
              {
                "type": "string"
              },
              {
                "type": "array",
                "items": {
                  "type": "string"
                }
              }
            ]
          },
          "stream": {
            "type": "boolean",
            "default": false,
            "description": "Server-sent events in OpenAI's chunk shape, ending with data: [DONE]."
          },
          "stream_options": {
            "type": "object",
            "properties": {
              "include_usage": {
                "type": "boolean"
              }
            }
          },
          "n": {
            "type": "integer",
            "enum": [
              1
            ]
          },
          "control": {
            "type": "array",
            "items": {
              "$ref": "#/components/schemas/ControlTerm"
            },
            "description": "Steering for this request only. Absent: the model's current control (PUT /v1/control). []: none."
          },
          "layers": {
            "description": "Layers the control applies to: a SPEC string as repengctl takes (\"-5..-18\", \"3,5,7..9\") or a list of layer numbers; absent: each vector's own layers.",
            "oneOf": [
              {
                "type": "string"
              },
              {
                "type": "array",
                "items": {
                  "type": "integer"
                }
              }
            ]
          },
          "normalize": {
            "type": "boolean",
            "description": "Rescale each steered hidden state to its norm before steering (repeng's normalize)."
          }
        }
      },
      "CompletionRequest": {
        "type": "object",
        "required": [
          "prompt"
        ],
        "properties": {
          "prompt": {
            "oneOf": [
              {
                "type": "string"
              },
              {
                "type": "array",
                "items": {
                  "type": "string"
                },
                "maxItems": 1
              }
            ]
          },
          "model": {
            "type": "string",
            "description": "A model id from /v1/models; empty or absent: the default model."
          },
          "max_tokens": {
            "type": "integer",
            "minimum": 1,
            "description": "Tokens to generate (default: the daemon's default_max_tokens)."
          },
          "max_completion_tokens": {
            "type": "integer",
            "minimum": 1,
            "description": "Same as max_tokens (newer clients send this)."
          },
          "temperature": {
            "type": "number",
            "minimum": 0,
            "maximum": 100,
            "default": 1,
            "description": "0 is greedy."
          },
          "top_p": {
            "type": "number",
            "default": 1
          },
          "top_k": {
            "type": "integer",
            "minimum": 0,
            "default": 0,
            "description": "repengd: 0 is off."
          },
          "min_p": {
            "type": "number",
            "default": 0,
            "description": "repengd."
          },
          "repetition_penalty": {
            "type": "number",
            "default": 1,
            "description": "repengd: transformers' multiplicative penalty."
          },
          "frequency_penalty": {
            "type": "number",
            "description": "Only 0 is accepted."
          },
          "presence_penalty": {
            "type": "number",
            "description": "Only 0 is accepted."
          },
          "seed": {
            "type": "integer"
          },
          "stop": {
            "oneOf": [
              {
                "type": "string"
              },
              {
                "type": "array",
                "items": {
                  "type": "string"
                }
              }
            ]
          },
          "stream": {
            "type": "boolean",
            "default": false,
            "description": "Server-sent events in OpenAI's chunk shape, ending with data: [DONE]."
          },
          "stream_options": {
            "type": "object",
            "properties": {
              "include_usage": {
                "type": "boolean"
              }
            }
          },
          "n": {
            "type": "integer",
            "enum": [
              1
            ]
          },
          "control": {
            "type": "array",
            "items": {
              "$ref": "#/components/schemas/ControlTerm"
            },
            "description": "Steering for this request only. Absent: the model's current control (PUT /v1/control). []: none."
          },
          "layers": {
            "description": "Layers the control applies to: a SPEC string as repengctl takes (\"-5..-18\", \"3,5,7..9\") or a list of layer numbers; absent: each vector's own layers.",
            "oneOf": [
              {
                "type": "string"
              },
              {
                "type": "array",
                "items": {
                  "type": "integer"
                }
              }
            ]
          },
          "normalize": {
            "type": "boolean",
            "description": "Rescale each steered hidden state to its norm before steering (repeng's normalize)."
          }
        }
      },
      "Usage": {
        "type": "object",
        "properties": {
          "prompt_tokens": {
            "type": "integer"
          },
          "completion_tokens": {
            "type": "integer"
          },
          "total_tokens": {
            "type": "integer"
          }
        }
      },
      "ChatCompletion": {
        "type": "object",
        "properties": {
          "id": {
            "type": "string"
          },
          "object": {
            "const": "chat.completion"
          },
          "created": {
            "type": "integer"
          },
          "model": {
            "type": "string"
          },
          "choices": {
            "type": "array",
            "items": {
              "type": "object",
              "properties": {
                "index": {
                  "type": "integer"
                },
                "message": {
                  "type": "object",
                  "properties": {
                    "role": {
                      "const": "assistant"
                    },
                    "content": {
                      "type": "string"
                    }
                  }
                },
                "finish_reason": {
                  "type": "string",
                  "enum": [
                    "stop",
                    "length"
                  ]
                }
              }
            }
          },
          "usage": {
            "$ref": "#/components/schemas/Usage"
          }
        }
      },
      "Completion": {
        "type": "object",
        "properties": {
          "id": {
            "type": "string"
          },
          "object": {
            "const": "text_completion"
          },
          "created": {
            "type": "integer"
          },
          "model": {
            "type": "string"
          },
          "choices": {
            "type": "array",
            "items": {
              "type": "object",
              "properties": {
                "index": {
                  "type": "integer"
                },
                "text": {
                  "type": "string"
                },
                "finish_reason": {
                  "type": "string",
                  "enum": [
                    "stop",
                    "length"
                  ]
                }
              }
            }
          },
          "usage": {
            "$ref": "#/components/schemas/Usage"
          }
        }
      },
      "Model": {
        "type": "object",
        "properties": {
          "id": {
            "type": "string"
          },
          "object": {
            "const": "model"
          },
          "created": {
            "type": "integer"
          },
          "owned_by": {
            "type": "string"
          },
          "architecture": {
            "type": "string"
          },
          "display_name": {
            "type": "string"
          },
          "layers": {
            "type": "integer"
          },
          "hidden_size": {
            "type": "integer"
          },
          "context_length": {
            "type": "integer"
          },
          "precision": {
            "type": "string",
            "enum": [
              "native",
              "exact"
            ]
          },
          "resident_bytes": {
            "type": "integer"
          },
          "default": {
            "type": "boolean"
          },
          "controlled": {
            "type": "boolean"
          },
          "chat_template": {
            "type": "boolean"
          }
        }
      },
      "ModelList": {
        "type": "object",
        "properties": {
          "object": {
            "const": "list"
          },
          "data": {
            "type": "array",
            "items": {
              "$ref": "#/components/schemas/Model"
            }
          }
        }
      },
      "Control": {
        "type": "object",
        "properties": {
          "model": {
            "type": "string"
          },
          "control": {
            "type": "array",
            "items": {
              "$ref": "#/components/schemas/ControlTerm"
            }
          },
          "layers": {
            "type": "array",
            "items": {
              "type": "integer"
            }
          },
          "normalize": {
            "type": "boolean"
          },
          "controlled_layers": {
            "type": "array",
            "items": {
              "type": "integer"
            },
            "description": "Block indices steered"
          },
          "warnings": {
            "type": "array",
            "items": {
              "type": "string"
            }
          }
        }
      },
      "SetControlRequest": {
        "type": "object",
        "required": [
          "control"
        ],
        "properties": {
          "model": {
            "type": "string"
          },
          "control": {
            "type": "array",
            "items": {
              "$ref": "#/components/schemas/ControlTerm"
            },
            "description": "[] resets"
          },
          "layers": {
            "description": "Layers the control applies to: a SPEC string as repengctl takes (\"-5..-18\", \"3,5,7..9\") or a list of layer numbers; absent: each vector's own layers.",
            "oneOf": [
              {
                "type": "string"
              },
              {
                "type": "array",
                "items": {
                  "type": "integer"
                }
              }
            ]
          },
          "normalize": {
            "type": "boolean"
          }
        }
      },
      "Vector": {
        "type": "object",
        "properties": {
          "name": {
            "type": "string"
          },
          "file": {
            "type": "string"
          },
          "status": {
            "type": "string",
            "enum": [
              "ok",
              "stale",
              "error"
            ]
          },
          "version": {
            "type": "integer"
          },
          "size_bytes": {
            "type": "integer"
          },
          "layers": {
            "type": "array",
            "items": {
              "type": "integer"
            }
          },
          "hidden_size": {
            "type": "integer"
          },
          "model_hint": {
            "type": "string"
          },
          "method": {
            "type": "string"
          },
          "sae_features": {
            "type": "string"
          },
          "error": {
            "type": "string"
          }
        }
      },
      "VectorList": {
        "type": "object",
        "properties": {
          "object": {
            "const": "list"
          },
          "data": {
            "type": "array",
            "items": {
              "$ref": "#/components/schemas/Vector"
            }
          }
        }
      },
      "TrainRequest": {
        "type": "object",
        "required": [
          "name",
          "dataset"
        ],
        "properties": {
          "model": {
            "type": "string"
          },
          "name": {
            "type": "string",
            "description": "1-64 characters from [A-Za-z0-9_.-]"
          },
          "dataset": {
            "type": "array",
            "items": {
              "type": "object",
              "required": [
                "positive",
                "negative"
              ],
              "properties": {
                "positive": {
                  "type": "string"
                },
                "negative": {
                  "type": "string"
                },
                "reply": {
                  "type": "string",
                  "description": "With chat: the start of the answer"
                }
              }
            }
          },
          "method": {
            "type": "string",
            "enum": [
              "pca_diff",
              "pca_center",
              "mean_diff"
            ]
          },
          "layers": {
            "description": "Layers the control applies to: a SPEC string as repengctl takes (\"-5..-18\", \"3,5,7..9\") or a list of layer numbers; absent: each vector's own layers.",
            "oneOf": [
              {
                "type": "string"
              },
              {
                "type": "array",
                "items": {
                  "type": "integer"
                }
              }
            ]
          },
          "overwrite": {
            "type": "boolean"
          },
          "batch_size": {
            "type": "integer",
            "minimum": 1,
            "maximum": 1024
          },
          "chat": {
            "type": "boolean",
            "description": "Positive and negative are user messages, laid out by the model's chat template"
          },
          "chat_format": {
            "type": "string"
          },
          "sae": {
            "type": "string",
            "description": "An SAE folder in the daemon's SAE directory"
          },
          "keep_features": {
            "type": "boolean"
          },
          "sae_repeng_pairing": {
            "type": "boolean"
          },
          "stream": {
            "type": "boolean",
            "default": true
          }
        }
      },
      "TrainResult": {
        "type": "object",
        "properties": {
          "vector": {
            "$ref": "#/components/schemas/Vector"
          },
          "seconds": {
            "type": "number"
          },
          "warnings": {
            "type": "array",
            "items": {
              "type": "string"
            }
          },
          "top_features": {
            "type": "array",
            "items": {
              "type": "object",
              "properties": {
                "layer": {
                  "type": "integer"
                },
                "index": {
                  "type": "array",
                  "items": {
                    "type": "integer"
                  }
                },
                "weight": {
                  "type": "array",
                  "items": {
                    "type": "number"
                  }
                }
              }
            }
          }
        }
      },
      "Health": {
        "type": "object",
        "properties": {
          "status": {
            "type": "string",
            "enum": [
              "ok",
              "shutting_down"
            ]
          },
          "models": {
            "type": "array",
            "items": {
              "type": "string"
            }
          }
        }
      }
    }
  }
}
"""#
}
